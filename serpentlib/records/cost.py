"""What a run's result cost to build. A long profile is built over several runs: a package taken
from the build cache was built by an earlier run, and a build that resumed an interrupted one
(its `resume` phase) goes on with the work earlier runs did on the same build tree; a package
taken from a build another stage of the same run made (`shared`) counts nothing more. For each
package a run installed, this follows that chain through the metrics database, within the run's
work directory, back to the run that extracted the sources, and sums its phases.

`cost.csv` in the run directory holds the result, `builds.csv` every phase of that work, each
with the run that did it, and `runs.csv` those runs: how each ended and what it built of the
result. The report shows them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import metrics
from .history import History

COLUMNS = ["stage", "package", "origin", "wall_s", "user_s", "sys_s", "max_rss_kb", "runs", "run_ids", "complete"]
FILE = "cost.csv"
BUILDS = "builds.csv"
RUNS = "runs.csv"
RUN_COLUMNS = ["run_id", "started", "duration_s", "stages", "why", "built", "build_wall_s"]
BUILD_COLUMNS = ["run_id", "stage", "package", "version", "phase", "start", "end", "wall_s", "user_s", "sys_s",
                 "max_rss_kb", "exit_code"]


def _chain(own: pd.DataFrame, started: str, earlier: pd.DataFrame) -> tuple[list[pd.DataFrame], bool]:
    """The phases behind one package: `own` (built in a run that started at `started`), then while
    the earliest part began with `resume`, the phases of the latest earlier run of the same work
    directory that built it (`earlier`: the store's built phases of this stage and package, with
    each run's start). False when a run of the chain is missing from the store."""
    parts = [own]
    while "resume" in set(parts[-1]["phase"]):
        before = earlier[earlier["started"] < started]
        if before.empty:
            return parts, False
        started = before["started"].max()
        parts.append(before[before["started"] == started])
    return parts, True


def run_count(run_ids: pd.Series) -> int:
    """How many runs the `run_ids` column names, each once."""
    return len(set(" ".join(run_ids.astype(str)).split()))


def result_cost(run_dir: Path, history: History) -> pd.DataFrame:
    """Per stage and package of the run in `run_dir`: the build work that made what it installed,
    over every run it took (`runs`, `run_ids`); `complete` is False when part of it is not in the
    store (a run it names was never added, or came from another work directory)."""
    return result_work(run_dir, history)[0]


def result_work(run_dir: Path, history: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`result_cost`, and the phases it sums (BUILD_COLUMNS: each with the run that did it)."""
    info = json.loads((Path(run_dir) / "run.json").read_text())
    me, work_dir = str(info["run_id"]), str(info.get("work_dir", ""))
    phases = metrics.load(run_dir, "phases")
    runs = history.runs()
    runs = runs[(runs["work_dir"] == work_dir) & (runs["run_id"] != me)][["run_id", "started"]] if work_dir else runs[:0]
    rows, works = [], []
    for (stage, package), mine in phases.groupby(["stage", "package"], sort=False):
        stored = history.table("phases", stage=stage, package=package)
        stored = stored[stored["origin"] == "built"].merge(runs, on="run_id")
        cached = mine["origin"].eq("cached").any()
        if cached and str(mine["from_run"].max()) == me:  # another stage of this run built it: counted there
            rows.append({"stage": stage, "package": package, "origin": "shared", "wall_s": 0.0, "user_s": 0.0,
                         "sys_s": 0.0, "max_rss_kb": 0, "runs": 1, "run_ids": me, "complete": True})
            continue
        if cached:  # the run that built it: its phases, from the store
            own = stored[stored["run_id"] == str(mine["from_run"].max())]
            started = own["started"].iloc[0] if not own.empty else ""
        else:
            own, started = mine[mine["origin"] == "built"], str(info.get("started", ""))
        parts, complete = _chain(own, started, stored) if started else ([own], False)
        work = pd.concat(parts, ignore_index=True)
        works.append(work.assign(stage=stage, package=package))
        ids = list(dict.fromkeys(work["run_id"].astype(str)))
        rows.append({"stage": stage, "package": package, "origin": "cached" if cached else "built",
                     "wall_s": round(float(work["wall_s"].sum()), 3), "user_s": round(float(work["user_s"].sum()), 3),
                     "sys_s": round(float(work["sys_s"].sum()), 3),
                     "max_rss_kb": int(work["max_rss_kb"].max()) if not work.empty else 0,
                     "runs": len(ids), "run_ids": " ".join(reversed(ids)), "complete": complete})
    began = {**dict(zip(runs["run_id"], runs["started"])), me: str(info.get("started", ""))}
    builds = pd.concat(works, ignore_index=True) if works else pd.DataFrame(columns=BUILD_COLUMNS)
    builds = (builds.assign(began=builds["run_id"].astype(str).map(began).fillna(""))  # by run, then by time
              .sort_values(["began", "start"], kind="stable").reindex(columns=BUILD_COLUMNS))
    return pd.DataFrame(rows, columns=COLUMNS), builds


def _ended(run: dict) -> tuple[str, str]:
    """How a stored run ended: each stage's outcome, and why it stopped (the first line of run.json's
    failure, where the run directory is still at hand)."""
    stages = json.loads(run.get("stages") or "{}")
    said = ", ".join(f"stage {k} {v}" for k, v in stages.items()) or "no stage recorded"
    stopped = [k for k, v in stages.items() if v == "interrupted"]
    try:
        why = json.loads((Path(str(run.get("run_dir", ""))) / "run.json").read_text()).get("failure", "")
    except (OSError, ValueError):
        why = "" if all(v == "passed" for v in stages.values()) else "its run directory is gone"
    if not why and stopped:
        why = f"interrupted (^C or SIGTERM) in stage {stopped[0]}"
    return said, str(why or "").strip().split("\n")[0].split("; log: ")[0][:300]


def result_runs(run_dir: Path, builds: pd.DataFrame, history: History) -> pd.DataFrame:
    """The runs the result took, oldest first, the run in `run_dir` last: how each ended and which
    of the result's packages it built (or went on building)."""
    info = json.loads((Path(run_dir) / "run.json").read_text())
    me = str(info["run_id"])
    stored = {str(r["run_id"]): r for r in history.runs().to_dict("records")}
    stored[me] = {**info, "stages": json.dumps(info.get("stages", {}))}
    rows = []
    for run_id in list(dict.fromkeys([*builds["run_id"].astype(str), me])):
        run = stored.get(run_id, {})
        mine = builds[builds["run_id"].astype(str) == run_id]
        said, why = _ended(run)
        built = ", ".join(f"{s}/{p}" for s, p in dict.fromkeys(zip(mine["stage"], mine["package"])))
        rows.append({"run_id": run_id, "started": run.get("started", ""), "duration_s": run.get("duration_s", 0.0),
                     "stages": said if run else "not in the metrics database", "why": why,
                     "built": built or "nothing (all from the build cache)",
                     "build_wall_s": round(float(mine["wall_s"].sum()), 1)})
    return pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values("started", kind="stable")


def write(run_dir: Path, history: History) -> Path:
    out = Path(run_dir) / FILE
    spent, builds = result_work(run_dir, history)
    spent.to_csv(out, index=False)
    builds.to_csv(Path(run_dir) / BUILDS, index=False)
    result_runs(run_dir, builds, history).to_csv(Path(run_dir) / RUNS, index=False)
    return out


def load_runs(run_dir: Path) -> pd.DataFrame:
    """runs.csv: the runs behind a run's result (empty when not written)."""
    return _read(run_dir, RUNS, RUN_COLUMNS)


def _read(run_dir: Path, name: str, columns: list[str]) -> pd.DataFrame:
    path = Path(run_dir) / name
    return pd.read_csv(path, keep_default_na=False) if path.is_file() else pd.DataFrame(columns=columns)


def load_builds(run_dir: Path) -> pd.DataFrame:
    """builds.csv: every phase of the build work behind a run's result (empty when not written)."""
    return _read(run_dir, BUILDS, BUILD_COLUMNS)


def load(run_dir: Path) -> pd.DataFrame:
    spent = _read(run_dir, FILE, COLUMNS)
    return spent.assign(complete=spent["complete"].astype(str).str.lower().eq("true"))


def per_stage(cost: pd.DataFrame) -> pd.DataFrame:
    """Per stage: minutes of wall and CPU time behind its packages, the peak memory of one
    process, and over how many runs; `complete` False if any package's chain is not."""
    if cost.empty:
        return pd.DataFrame(columns=["stage", "wall_min", "cpu_min", "peak_rss_mb", "runs", "complete"])
    g = cost.assign(cpu_s=cost["user_s"] + cost["sys_s"]).groupby("stage", sort=False)
    out = pd.DataFrame({"wall_min": (g["wall_s"].sum() / 60).round(1), "cpu_min": (g["cpu_s"].sum() / 60).round(1),
                        "peak_rss_mb": (g["max_rss_kb"].max() / 1024).round(0).astype(int),
                        "runs": g["run_ids"].agg(run_count), "complete": g["complete"].all()})
    return out.reset_index()
