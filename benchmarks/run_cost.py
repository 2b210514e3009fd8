"""What a bootstrap cost, from the records of one or more runs (a long profile resumed over
several `serpent run`s): per stage and per package, the wall and CPU time of the work done in
those runs (phases taken from the cache cost nothing and are left out; a phase an interrupted
run recorded counts, as its time was spent) and the peak memory of one process; with
--work, the disk the work directory takes.

    .venv/bin/python benchmarks/run_cost.py RUN_DIR [RUN_DIR...] [--work WORK_DIR] [--top 5]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pandas as pd


def load(run_dirs: list[Path]) -> pd.DataFrame:
    frames = [pd.read_csv(d / "phases.csv") for d in run_dirs if (d / "phases.csv").is_file()]
    if not frames:
        raise SystemExit("no phases.csv in " + ", ".join(map(str, run_dirs)))
    phases = pd.concat(frames, ignore_index=True)
    phases = phases[phases["phase"] != "cached"]
    return phases.assign(cpu_s=phases["user_s"] + phases["sys_s"])


def cost(phases: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    out = phases.groupby(by).agg(wall_min=("wall_s", "sum"), cpu_min=("cpu_s", "sum"),
                                 peak_rss_mb=("max_rss_kb", "max"), runs=("run_id", "nunique"))
    out[["wall_min", "cpu_min"]] = (out[["wall_min", "cpu_min"]] / 60).round(1)
    out["peak_rss_mb"] = (out["peak_rss_mb"] / 1024).round(0).astype(int)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, help="a work directory whose disk use to report")
    ap.add_argument("--top", type=int, default=5, help="packages to list per stage (default 5)")
    args = ap.parse_args()
    phases = load(args.runs)
    pd.set_option("display.width", 120)
    print("per stage (work done in these runs; cached packages cost nothing):")
    print(cost(phases, ["stage"]).to_string())
    packages = cost(phases, ["stage", "package"]).sort_values("wall_min", ascending=False)
    print(f"\nthe {args.top} costliest packages of each stage:")
    print(packages.groupby(level="stage", group_keys=False).head(args.top).sort_index(level="stage", sort_remaining=False)
          .to_string())
    total = cost(phases.assign(all="all"), ["all"])
    print(f"\nin all: {total['wall_min'].iloc[0]} min wall, {total['cpu_min'].iloc[0]} min CPU, "
          f"peak {total['peak_rss_mb'].iloc[0]} MB in one process")
    if args.work:
        du = subprocess.run(["du", "-sh", "--", *sorted(str(p) for p in args.work.iterdir())],
                            capture_output=True, text=True).stdout
        total_du = subprocess.run(["du", "-sh", str(args.work)], capture_output=True, text=True).stdout
        print(f"\ndisk:\n{du}{total_du}", end="")


if __name__ == "__main__":
    main()
