"""What a run's result cost to build. A long profile is built over several runs: a package taken
from the build cache was built by an earlier run, and a build that resumed an interrupted one
(its `resume` phase) goes on with the work earlier runs did on the same build tree; a package
taken from a build another stage of the same run made (`shared`) counts nothing more. For each
package a run installed, this follows that chain through the metrics database, within the run's
work directory, back to the run that extracted the sources, and sums its phases.

`cost.csv` in the run directory holds the result; the report shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import metrics
from .history import History

COLUMNS = ["stage", "package", "origin", "wall_s", "user_s", "sys_s", "max_rss_kb", "runs", "run_ids", "complete"]
FILE = "cost.csv"


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
    info = json.loads((Path(run_dir) / "run.json").read_text())
    me, work_dir = str(info["run_id"]), str(info.get("work_dir", ""))
    phases = metrics.load(run_dir, "phases")
    runs = history.runs()
    runs = runs[(runs["work_dir"] == work_dir) & (runs["run_id"] != me)][["run_id", "started"]] if work_dir else runs[:0]
    rows = []
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
        ids = list(dict.fromkeys(work["run_id"].astype(str)))
        rows.append({"stage": stage, "package": package, "origin": "cached" if cached else "built",
                     "wall_s": round(float(work["wall_s"].sum()), 3), "user_s": round(float(work["user_s"].sum()), 3),
                     "sys_s": round(float(work["sys_s"].sum()), 3),
                     "max_rss_kb": int(work["max_rss_kb"].max()) if not work.empty else 0,
                     "runs": len(ids), "run_ids": " ".join(reversed(ids)), "complete": complete})
    return pd.DataFrame(rows, columns=COLUMNS)


def write(run_dir: Path, history: History) -> Path:
    out = Path(run_dir) / FILE
    result_cost(run_dir, history).to_csv(out, index=False)
    return out


def load(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / FILE
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    spent = pd.read_csv(path, keep_default_na=False)
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
