"""Records -> CSV files in the run directory -> pandas dataframes.

Records are appended as they happen, so a run that fails or is killed keeps every record
made before it stopped.
"""

from __future__ import annotations

import csv
import json
import threading
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import SerpentError
from ..rows import HELD, OUTCOMES, TABLES


class Recorder:
    """Appends records to `<run_dir>/<table>.csv`, each row tagged with run_id and profile."""

    def __init__(self, run_dir: Path, run_id: str = "", profile: str = "") -> None:
        self.run_dir = Path(run_dir)
        self.run_id, self.profile = run_id, profile
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def path(self, table: str) -> Path:
        return self.run_dir / f"{table}.csv"

    _lock = threading.Lock()  # builds running at once record into the same files

    def add(self, record: Any) -> None:
        with self._lock:
            self._add(record)

    def _add(self, record: Any) -> None:
        table = next(name for name, cls in TABLES.items() if isinstance(record, cls))
        row = {"run_id": self.run_id, "profile": self.profile, **asdict(record)}
        path = self.path(table)
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), [])
            if header != list(row):  # written by another version: appending would shift columns
                raise SerpentError(f"{path} has the columns {', '.join(header)}, not this version's "
                                   f"{', '.join(row)}", "give the run a new --run-dir; the old records stay as they are")
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def add_all(self, records: list[Any]) -> None:
        for record in records:
            self.add(record)


def columns(table: str) -> list[str]:
    return ["run_id", "profile"] + [f.name for f in fields(TABLES[table])]


def load(run_dir: Path, table: str, stage: str | None = None) -> pd.DataFrame:
    """One table of a run as a dataframe (empty, with the right columns, if nothing was recorded)."""
    path = Path(run_dir) / f"{table}.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns(table))
    df = pd.read_csv(path)
    if table == "checks":
        df = normalise_checks(df)
    if table == "phases":
        df = with_origin(df)
    return df if stage is None else df[df["stage"] == stage].reset_index(drop=True)


def normalise_checks(df: pd.DataFrame) -> pd.DataFrame:
    """`outcome`, `reason` and `cached_from` present and filled, also in records made before they
    existed (pass or fail then, from `passed`); `passed` True exactly for pass and xpass, as a
    record says it now (it was True for every xfail and skip before)."""
    df = df.copy()
    said = df["passed"].astype(str).str.lower().isin(("true", "1"))
    derived = said.map({True: "pass", False: "fail"})
    df["outcome"] = df["outcome"].where(df["outcome"].notna() & (df["outcome"] != ""), derived) \
        if "outcome" in df else derived
    df["passed"] = df["outcome"].isin(HELD)
    for column in ("reason", "cached_from"):
        df[column] = df[column].astype(object).fillna("").astype(str) if column in df else ""
    return df


def outcome_counts(checks: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """How many checks had each outcome, per group of `by`: one column per outcome, and the total."""
    counts = pd.crosstab([checks[c] for c in by], checks["outcome"]).reindex(columns=list(OUTCOMES), fill_value=0)
    counts.columns.name = None
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index()


def outcome_matrix(checks: pd.DataFrame, kind: str, stage: str | None = None) -> pd.DataFrame:
    """Packages by the checks named `kind`<name> (`policy:`, `flag:`), each cell the outcome ("" where
    none); the names without `kind`. Empty when there are none."""
    rows = checks[checks["check"].str.startswith(kind) & ((checks["stage"] == stage) if stage else True)]
    if rows.empty:
        return pd.DataFrame()
    cells = rows.pivot_table(index="subject", columns="check", values="outcome", aggfunc="first", fill_value="")
    cells.columns = [c.removeprefix(kind) for c in cells.columns]
    return cells


def with_origin(phases: pd.DataFrame) -> pd.DataFrame:
    """Phases with `origin` and `from_run`; records written before those columns existed get
    them from the phase: a `cached` phase was taken from the build cache, by an unknown run."""
    if "origin" not in phases:
        phases = phases.assign(origin=["cached" if p == "cached" else "built" for p in phases["phase"]])
    if "from_run" not in phases:
        phases = phases.assign(from_run="")
    if "worker" not in phases:  # records from before phases named where they ran
        phases = phases.assign(worker="local")
    return phases.assign(from_run=["" if pd.isna(r) else str(r) for r in phases["from_run"]])


def load_run_dir(run_dir: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """A run directory's run.json and its tables, each row tagged with the run's id.

    A directory that several runs wrote into holds each one's rows under its own run_id: only
    the rows of the run its run.json names are taken."""
    run_dir = Path(run_dir)
    info_file = run_dir / "run.json"
    info = json.loads(info_file.read_text()) if info_file.is_file() else {"run_id": run_dir.name}
    run_id = str(info["run_id"])
    tables = {}
    for table in TABLES:
        df = load(run_dir, table)
        ids = set(df["run_id"].astype(str))
        if len(ids) > 1:
            if run_id not in ids:
                raise SerpentError(f"{run_dir / table}.csv holds the records of runs {', '.join(sorted(ids))}, "
                                   f"none of them {run_id}, the run its run.json names",
                                   "give a run directory written by one `serpent run`")
            df = df[df["run_id"].astype(str) == run_id]
        tables[table] = df.assign(run_id=run_id).reset_index(drop=True)
    return info, tables


def package_origins(phases: pd.DataFrame) -> pd.DataFrame:
    """Per stage and package: `origin` (built, or cached when it came from the build cache) and
    `from_run` (the run that built a cached package)."""
    if phases.empty:
        return pd.DataFrame(columns=["origin", "from_run"],
                            index=pd.MultiIndex.from_arrays([[], []], names=["stage", "package"]))
    phases = with_origin(phases)
    cached = phases["origin"].eq("cached")
    by = [phases["stage"], phases["package"]]
    return pd.DataFrame({"origin": cached.groupby(by, sort=False).any().map({True: "cached", False: "built"}),
                         "from_run": phases["from_run"].where(cached, "").groupby(by, sort=False).max()})


def origin_label(origin: str, from_run: str) -> str:
    """`built`, or `cached` with the run that built it."""
    return origin if origin != "cached" else f"cached (built by {from_run or 'an earlier run'})"


def package_times(phases: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds per package (rows, in build order) and phase (columns), plus a total and share,
    and whether the package was built or taken from the build cache."""
    if phases.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(phases["package"]))
    table = phases.pivot_table(index="package", columns="phase", values="wall_s", aggfunc="sum", fill_value=0.0)
    table = table.reindex(order)
    table["total"] = table.sum(axis=1)
    table["share_%"] = (100 * table["total"] / table["total"].sum()).round(1)
    table = table.round(2)
    origins = package_origins(phases).droplevel("stage")
    origins = origins[~origins.index.duplicated()].reindex(order)
    table["origin"] = [origin_label(o, r) for o, r in zip(origins["origin"], origins["from_run"])]
    return table


def stage_summary(phases: pd.DataFrame, checks: pd.DataFrame, outcomes: dict[str, str] | None = None) -> pd.DataFrame:
    """Per stage: its outcome (from run.json's `stages`, when given), packages (built and taken from
    the build cache), wall seconds, how many checks had each outcome, and the runs whose checks
    were replayed. Stages are named by number, as run.json names them."""
    outcomes = outcomes or {}
    numbers = sorted(set(outcomes) | {s.replace("stage", "") for s in set(phases["stage"]) | set(checks["stage"])})
    summary = pd.DataFrame({"stage": numbers, "outcome": [outcomes.get(n, "") for n in numbers]})
    if not phases.empty:
        origins = package_origins(phases).reset_index()
        per = phases.groupby("stage").agg(packages=("package", "nunique"), wall_s=("wall_s", "sum"))
        per = per.join(origins.groupby("stage")["origin"].agg(built=lambda o: int((o == "built").sum()),
                                                              cached=lambda o: int((o == "cached").sum())))
        per = per.reset_index()
        per["stage"] = per["stage"].str.replace("stage", "")
        per["wall_s"] = per["wall_s"].round(1)
        summary = summary.merge(per, on="stage", how="left")
    if not checks.empty:
        per = outcome_counts(checks, ["stage"])
        replayed = checks.groupby("stage")["cached_from"].agg(lambda runs: ", ".join(sorted(set(runs) - {""})))
        per["checks_replayed_from"] = per["stage"].map(replayed)
        per["stage"] = per["stage"].str.replace("stage", "")
        summary = summary.merge(per.rename(columns={"total": "checks"}), on="stage", how="left")
    # Counts stay whole numbers where a stage that did not run left gaps.
    counts = [c for c in summary.columns if c not in ("stage", "outcome", "wall_s", "checks_replayed_from")]
    return summary.astype({c: "Int64" for c in counts})
