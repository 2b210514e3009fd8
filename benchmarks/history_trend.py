"""Benchmark: read 1,000 runs of the mini profile from the metrics database and draw one
package's trend. Target: under a second. Prints its figures; run with the project's Python:

    .venv/bin/python benchmarks/history_trend.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from serpentlib.records import plots  # noqa: E402
from serpentlib.records.history import History  # noqa: E402
from serpentlib.build.profile import load_profile  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=timezone.utc)  # run i starts i minutes later
PHASES = ("fetch", "extract", "configure", "build", "check", "install", "merge")


def generate(history: History, runs: int, seed: int = 1) -> int:
    """`runs` runs shaped like the mini profile's records; returns the number of phase rows."""
    rng = random.Random(seed)
    profile = load_profile("mini")
    stages = {f"stage{n}": profile.parameters(n).get("packages", []) for n in profile.stage_numbers}
    base_time = {(s, p): rng.uniform(1, 60) for s, pkgs in stages.items() for p in pkgs}
    run_rows, phase_rows, size_rows = [], [], []
    for i in range(runs):
        run_id = f"2026{i:06d}-mini"
        run_rows.append({"run_id": run_id, "profile": "mini", "started": (START + timedelta(minutes=i)).isoformat(),
                         "finished": "", "duration_s": 0.0, "host": "{}", "stages": json.dumps({"1": "passed"}),
                         "run_dir": ""})
        for stage, pkgs in stages.items():
            for pkg in pkgs:
                total = base_time[(stage, pkg)] * rng.uniform(0.9, 1.1)
                for phase in PHASES:
                    phase_rows.append({"run_id": run_id, "profile": "mini", "stage": stage, "package": pkg,
                                       "version": "1", "phase": phase, "start": "", "end": "",
                                       "wall_s": total / len(PHASES), "user_s": 0.0, "sys_s": 0.0,
                                       "max_rss_kb": 0, "exit_code": 0, "log": ""})
                size_rows.append({"run_id": run_id, "profile": "mini", "stage": stage, "package": pkg, "version": "1",
                                  "source_bytes": 1, "build_bytes": 1, "installed_bytes": 10**6, "files": 1,
                                  "elf_files": 1})
    history.add_frames(pd.DataFrame(run_rows), phases=pd.DataFrame(phase_rows), sizes=pd.DataFrame(size_rows))
    return len(phase_rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, History(Path(tmp) / "metrics.sqlite") as history:
        t0 = time.perf_counter()
        rows = generate(history, args.runs)
        print(f"generated {args.runs} runs, {rows} phase rows in {time.perf_counter() - t0:.1f} s")
        timings = []
        for package in ("musl", "bash", "tcc"):
            t0 = time.perf_counter()
            trend = history.trend("stage3", package)
            fig = plots.trend(trend, f"stage3 {package}: wall_s")
            fig.savefig(Path(tmp) / f"{package}.png")
            timings.append(time.perf_counter() - t0)
            assert len(trend) == args.runs
        print(f"read {args.runs} runs and drew one package's trend: "
              f"best {min(timings):.3f} s, worst {max(timings):.3f} s (target < 1 s)")


if __name__ == "__main__":
    main()
