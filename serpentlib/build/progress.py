"""Progress of a long phase: ninja's `[done/total]` lines read from the phase's log while it runs,
with the time left estimated from earlier runs in the metrics history: the step times an earlier
build's ninja log gives the outputs this tree has not built yet, else their median pace per step,
or else the pace so far.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..paths import db_path

log = logging.getLogger(__name__)
NINJA = re.compile(rb"\[(\d+)/(\d+)\]")


def ninja_progress(logfile: Path, tail: int = 65536) -> tuple[int, int] | None:
    """The last `[done/total]` of a ninja log, or None when there is none yet."""
    try:
        with open(logfile, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(fh.tell() - tail, 0))
            found = NINJA.findall(fh.read())
    except OSError:
        return None
    return (int(found[-1][0]), int(found[-1][1])) if found else None


def _finished(stage: str, package: str, phase: str, db: str | Path | None, last: int) -> list[tuple[float, str]]:
    """(wall seconds, log) of the `last` earlier runs that finished this phase, newest first."""
    path = db_path(db)
    if not path.is_file():
        return []
    try:
        with sqlite3.connect(path) as conn:
            return conn.execute(
                "SELECT wall_s, log FROM phases WHERE stage = ? AND package = ? AND phase = ? AND exit_code = 0 "
                "AND origin = 'built' ORDER BY rowid DESC LIMIT ?", (stage, package, phase, last)).fetchall()
    except sqlite3.Error:  # an older or foreign database: no estimate from it
        return []


def earlier_paces(stage: str, package: str, phase: str, db: str | Path | None = None, last: int = 20) -> list[float]:
    """Seconds per ninja step of this phase in the `last` earlier runs that finished it, from the
    history: the wall time over the steps its log shows (a resumed build did only those left)."""
    paces = []
    for wall, logfile in _finished(stage, package, phase, db, last):
        steps = ninja_progress(Path(logfile)) if wall and logfile else None
        if steps and steps[0] == steps[1] > 0:  # its log is still there and shows ninja done
            paces.append(wall / steps[1])
    return paces


def step_times(ninja_log: Path) -> dict[str, float]:
    """Seconds per output of a ninja log (`.ninja_log`: start and end in ms, mtime, output, hash);
    an output's last entry counts."""
    try:
        lines = Path(ninja_log).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    times = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 5 and parts[0].isdigit() and parts[1].isdigit():
            times[parts[3]] = (int(parts[1]) - int(parts[0])) / 1000
    return times


def earlier_steps(stage: str, package: str, phase: str, db: str | Path | None = None) -> dict[str, float]:
    """The step times of the newest earlier run that finished this phase and whose ninja log is
    kept beside the phase's log (`ninja_log.log`); empty when there is none."""
    for _, logfile in _finished(stage, package, phase, db, 20):
        times = step_times(Path(logfile).with_name("ninja_log.log")) if logfile else {}
        if times:
            return times
    return {}


def work_left(steps: dict[str, float], tree_log: Path | None, jobs: int) -> float | None:
    """Seconds left: the earlier build's times of the outputs this tree's ninja log does not have
    yet, over the jobs that run at once. Heavy steps (clang's Sema, CodeGen) weigh what they took."""
    if not steps or tree_log is None or not tree_log.is_file():  # not started yet, or no ninja build
        return None
    done = step_times(tree_log)
    return sum(t for out, t in steps.items() if out not in done) / max(jobs, 1)


def estimate_left(done: int, total: int, elapsed: float, paces: list[float],
                  left_s: float | None = None) -> tuple[float, str] | None:
    """Seconds left and where the estimate comes from: `left_s` (see work_left), or the steps left
    at the median pace of earlier runs, or at the pace of this run so far."""
    if total <= 0:
        return None
    if left_s is not None:
        return left_s, "from an earlier build's step times"
    if paces:
        return statistics.median(paces) * (total - done), f"from {len(paces)} earlier run(s)"
    if done <= 0:
        return None
    return elapsed / done * (total - done), "from the pace so far"


def describe(label: str, done: int, total: int, elapsed: float, paces: list[float],
             left_s: float | None = None) -> str:
    text = f"{label}: {done}/{total} steps ({100 * done / total:.0f}%) after {elapsed / 60:.1f} min"
    est = estimate_left(done, total, elapsed, paces, left_s)
    if est:
        text += f", about {est[0] / 60:.0f} min left ({est[1]})"
    return text


@contextmanager
def watch(logfile: Path, label: str, paces: list[float], every: float = 60.0, steps: dict[str, float] | None = None,
          tree_log: Path | None = None, jobs: int = 1) -> Iterator[None]:
    """Log the progress of a running ninja build every `every` seconds, until the block ends; with
    an earlier build's `steps` and this build's ninja log (`tree_log`), the time left is theirs."""
    stop = threading.Event()
    start = time.monotonic()

    def loop() -> None:
        last = None
        while not stop.wait(every):
            now = ninja_progress(logfile)
            if now and now != last:
                left = work_left(steps or {}, tree_log, jobs)
                log.info("%s", describe(label, *now, time.monotonic() - start, paces, left))
                last = now

    thread = threading.Thread(target=loop, name=f"progress {label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
