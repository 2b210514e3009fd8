"""Benchmark: a cold bootstrap of a profile (default mini) into a fresh work directory, then a
no-op rerun on it; prints the wall time of each, the rerun as a share of the cold run, and per
stage the makespan of its builds against its bounds (critical path, CPU over the cores) and what
a list schedule predicts on more machines. Targets (mini, 2 cores): cold at most 5 minutes,
no-op at most 3 % of it, makespan over the larger bound at most 1.15 in stages 1, 2 and 4.

    .venv/bin/python benchmarks/bootstrap_scale.py [--profile mini] [--keep DIR] [--workers N]

`--workers N`: both runs on a Dask LocalCluster of N processes (serpent run --workers N).

It uses the stage 0 seed and the source store as they are (both are made or filled once, and are
not what is measured), and a database of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serpentlib.records.schedule import scale_table


def serpent_run(profile: str, work: Path, run: Path, db: Path, workers: int = 0) -> float:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "serpentlib.cli", "run", "--profile", profile, "--work-dir", str(work),
                           "--run-dir", str(run), "--db", str(db), "-q"] + (["--workers", str(workers)] if workers else []),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"serpent run failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--keep", help="work and run directories go here, and stay (default: a temporary folder)")
    ap.add_argument("--workers", type=int, default=0, help="on a LocalCluster of this many worker processes")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="serpent-bench-", dir="/var/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        work, db = base / "work", base / "metrics.sqlite"
        cold = serpent_run(args.profile, work, base / "cold", db, args.workers)
        noop = serpent_run(args.profile, work, base / "noop", db, args.workers)
        host = json.loads((base / "cold" / "run.json").read_text()).get("host", {})
        print(f"profile {args.profile} on {host.get('cpus', os.cpu_count())} cores"
              + (f", {args.workers} local Dask workers" if args.workers else ""))
        print(f"cold run:  {cold:7.1f} s ({cold / 60:.1f} min)")
        print(f"no-op run: {noop:7.1f} s ({100 * noop / cold:.1f} % of the cold run)")
        print("\nper stage, the cold run's builds (seconds):")
        print(scale_table(base / "cold").to_string(index=False))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
