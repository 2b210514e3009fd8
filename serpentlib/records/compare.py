"""Run against run: per stage and package, time and size deltas and the checks that changed."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import metrics
from ..errors import SerpentError
from .history import History
from ..paths import PROJECT


@dataclass(frozen=True)
class Noise:
    """What counts as a real change: both the relative and the absolute bar must be passed."""

    time_ratio: float = 0.25     # 25 % slower or faster ...
    time_seconds: float = 2.0    # ... and at least this many seconds
    size_ratio: float = 0.02     # 2 % bigger or smaller ...
    size_bytes: int = 4096       # ... and at least this many bytes


@dataclass
class RunRecords:
    run_id: str
    phases: pd.DataFrame
    sizes: pd.DataFrame
    checks: pd.DataFrame
    info: dict = field(default_factory=dict)  # run.json, when the run is a directory
    where: Path | None = None  # the run's directory, when it is at hand


def load_run(ref: str | Path, history: History | None = None) -> RunRecords:
    """A run by directory, by id under runs/, or by id in the metrics database."""
    for candidate in (Path(ref), PROJECT / "runs" / str(ref)):
        if (candidate / "phases.csv").exists() or (candidate / "run.json").exists():
            info, tables = metrics.load_run_dir(candidate)
            return RunRecords(str(info["run_id"]), **tables, info=info, where=candidate)
    if history is not None:
        runs = history.runs().set_index("run_id")
        if str(ref) in runs.index:
            stored = Path(str(runs.loc[str(ref), "run_dir"] or ""))
            return RunRecords(str(ref), **{t: history.table(t, [str(ref)]) for t in metrics.TABLES},
                              where=stored if str(stored) != "." and stored.is_dir() else None)
    raise SerpentError(f"no run {ref!r}: not a run directory, not under runs/, not in the metrics database",
                       "give a run directory or a run id that `serpent run` printed")


def compare_page(a: RunRecords, b: RunRecords) -> Path:
    """Where `serpent compare` writes its page by default: run B's directory."""
    if b.where is None:
        raise SerpentError(f"run {b.run_id} has no directory at hand to write the comparison into",
                           "give the page's path: serpent compare A B --output FILE")
    return b.where / f"compare-{a.run_id}-{b.run_id}.html"


def seed_difference(a: RunRecords, b: RunRecords) -> str:
    """'' when both runs were seeded alike (stage 0), else what differs, in one line."""
    sa, sb = a.info.get("seed") or {}, b.info.get("seed") or {}
    if not sa or not sb:
        return "" if sa == sb else "only one run records its seed (stage 0)"
    if sa.get("key") == sb.get("key") and sa.get("packages_digest") == sb.get("packages_digest"):
        return ""
    versions = sorted(k for k in set(sa.get("versions", {})) | set(sb.get("versions", {}))
                      if sa.get("versions", {}).get(k) != sb.get("versions", {}).get(k))
    parts = [f"suite {sa.get('suite')} -> {sb.get('suite')}" if sa.get("suite") != sb.get("suite") else "",
             f"seed {sa.get('key')} -> {sb.get('key')}" if sa.get("key") != sb.get("key") else "",
             ", ".join(f"{k} {sa.get('versions', {}).get(k, '-')} -> {sb.get('versions', {}).get(k, '-')}"
                       for k in versions),
             "other package versions differ" if not versions and sa.get("key") == sb.get("key") else ""]
    return "seeded differently: " + "; ".join(p for p in parts if p)


def _rel(a: float, b: float) -> float:
    return (b - a) / a if a else (0.0 if b == a else float("inf"))


def common_stages(a: RunRecords, b: RunRecords) -> list[str]:
    return sorted(set(a.phases.get("stage", [])) & set(b.phases.get("stage", [])))


def compare(a: RunRecords, b: RunRecords, noise: Noise = Noise(), stages: list[str] | None = None) -> pd.DataFrame:
    """One row per (stage, package) in either run, with deltas and a `flag` column.
    Only `stages` (default: the stages both runs have) are compared."""
    stages = common_stages(a, b) if stages is None else stages
    a = RunRecords(a.run_id, *(df[df["stage"].isin(stages)] if not df.empty else df
                               for df in (a.phases, a.sizes, a.checks)))
    b = RunRecords(b.run_id, *(df[df["stage"].isin(stages)] if not df.empty else df
                               for df in (b.phases, b.sizes, b.checks)))
    def times(r: RunRecords) -> pd.Series:
        return r.phases.groupby(["stage", "package"])["wall_s"].sum() if not r.phases.empty else pd.Series(dtype=float)

    def sizes(r: RunRecords) -> pd.Series:
        return (r.sizes.set_index(["stage", "package"])["installed_bytes"] if not r.sizes.empty
                else pd.Series(dtype=float))

    df = pd.DataFrame({"time_a": times(a), "time_b": times(b), "size_a": sizes(a), "size_b": sizes(b)})
    oa, ob = metrics.package_origins(a.phases), metrics.package_origins(b.phases)
    df["origin"] = [_origin(oa, ob, key) for key in df.index]
    timed = df["origin"] == "built"  # a package taken from the cache took no build time: no time delta
    df["time_delta_s"] = (df["time_b"] - df["time_a"]).round(2).where(timed)
    df["time_delta_%"] = [round(100 * _rel(x, y), 1) if t else float("nan")
                          for x, y, t in zip(df["time_a"], df["time_b"], timed)]
    df["size_delta_bytes"] = df["size_b"] - df["size_a"]
    df["checks_changed"] = [_checks_changed(a.checks, b.checks, stage, pkg) for stage, pkg in df.index]
    flags = []
    for (stage, pkg), row in df.iterrows():
        why = []
        if pd.isna(row["time_a"]) or pd.isna(row["time_b"]):
            why.append("only in run " + ("B" if pd.isna(row["time_a"]) else "A"))
        elif row["origin"] == "built" and (abs(row["time_delta_s"]) >= noise.time_seconds
              and abs(row["time_delta_%"]) >= 100 * noise.time_ratio):
            why.append("slower" if row["time_delta_s"] > 0 else "faster")
        if not (pd.isna(row["size_a"]) or pd.isna(row["size_b"])) and (
                abs(row["size_delta_bytes"]) >= noise.size_bytes
                and abs(_rel(row["size_a"], row["size_b"])) >= noise.size_ratio):
            why.append("bigger" if row["size_delta_bytes"] > 0 else "smaller")
        if row["checks_changed"]:
            why.append("checks changed")
        flags.append(", ".join(why))
    df["flag"] = flags
    return df.reset_index().rename(columns={"level_0": "stage", "level_1": "package"})


def subject_package(subject: str) -> str:
    """The package a check's subject names: the whole subject (`tcc`, a policy's package) or what
    comes before `: ` (a recipe's check, `make: make --version`). A path names no package."""
    return subject.split(": ", 1)[0]


def _origin(oa: pd.DataFrame, ob: pd.DataFrame, key: tuple[str, str]) -> str:
    """`built` when neither run took the package from the build cache; else which did, built by whom."""
    cached = [f"{side} {metrics.origin_label('cached', o.at[key, 'from_run'])}" for side, o in (("A", oa), ("B", ob))
              if key in o.index and o.at[key, "origin"] == "cached"]
    return "; ".join(cached) or "built"


def by_origin(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The rows built in both runs (times compared), the rest (cached in A or B), and a sentence
    that counts each."""
    built, cached = table[table["origin"] == "built"], table[table["origin"] != "built"]
    text = f"times compared for {len(built)} packages built in both runs"
    if len(cached):
        text += f"; {len(cached)} taken from the build cache in run A or B are shown apart, without a time delta"
    return built, cached, text


def _checks_changed(a: pd.DataFrame, b: pd.DataFrame, stage: str, package: str) -> str:
    """Checks of this stage whose subject names exactly this package and whose outcome differs
    (or is new/gone)."""
    def outcomes(df: pd.DataFrame) -> dict[tuple[str, str], str]:
        if df.empty:
            return {}
        d = df[(df["stage"] == stage) & (df["subject"].astype(str).map(subject_package) == package)]
        return {(c, s): o for c, s, o in zip(d["check"], d["subject"], d["outcome"])}
    oa, ob = outcomes(a), outcomes(b)
    changed = [f"{c} {s}: {oa.get((c, s), 'absent')} -> {ob.get((c, s), 'absent')}"
               for c, s in sorted(set(oa) | set(ob)) if oa.get((c, s)) != ob.get((c, s))]
    return "; ".join(changed[:5]) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")


def stage_checks_changed(a: RunRecords, b: RunRecords, stages: list[str] | None = None) -> pd.DataFrame:
    """Every check whose outcome (pass, fail, xfail, xpass, skip) differs between the runs,
    whichever package it concerns."""
    stages = common_stages(a, b) if stages is None else stages
    key = ["stage", "check", "subject"]
    left = a.checks[key + ["outcome"]] if not a.checks.empty else pd.DataFrame(columns=key + ["outcome"])
    right = b.checks[key + ["outcome"]] if not b.checks.empty else pd.DataFrame(columns=key + ["outcome"])
    both = left.merge(right, on=key, how="outer", suffixes=("_a", "_b"))
    both = both[both["stage"].isin(stages)]
    both = both.fillna({"outcome_a": "absent", "outcome_b": "absent"})
    return both[both["outcome_a"] != both["outcome_b"]].reset_index(drop=True)


def _rows_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>none</p>"
    rows = []
    for _, r in table.iterrows():
        cls = ' class="flag"' if r["flag"] else ""
        cells = "".join(f"<td>{'' if pd.isna(v) else html.escape(str(v))}</td>" for v in r.values)
        rows.append(f"<tr{cls}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def to_html(a: RunRecords, b: RunRecords, table: pd.DataFrame, checks: pd.DataFrame, noise: Noise) -> str:
    flagged = table[table["flag"] != ""]
    built, cached, counts = by_origin(table)
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{padding:3px 8px;"
             "border-bottom:1px solid #ddd;text-align:right} tr.flag{background:#ffebee} td:nth-child(-n+2){text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>serpent compare {html.escape(a.run_id)} "
            f"{html.escape(b.run_id)}</title><style>{style}</style></head><body>"
            f"<h1>{html.escape(a.run_id)} → {html.escape(b.run_id)}</h1>"
            f"<p>{len(flagged)} of {len(table)} packages flagged beyond noise (time ±{noise.time_ratio:.0%} and "
            f"≥{noise.time_seconds} s; size ±{noise.size_ratio:.0%} and ≥{noise.size_bytes} bytes); "
            f"{html.escape(counts)}.</p>"
            f"<h2>Built in both runs</h2>{_rows_html(built)}"
            f"<h2>Taken from the build cache in run A or B</h2>{_rows_html(cached)}"
            f"<h2>Checks that changed</h2>{checks.to_html(index=False) if not checks.empty else '<p>none</p>'}"
            "</body></html>")
