"""Progress of a long phase: ninja's `[done/total]` lines read from the phase's log while it runs,
with the time left estimated from earlier runs in the metrics history, or else from the pace so far.
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


def earlier_paces(stage: str, package: str, phase: str, db: str | Path | None = None, last: int = 20) -> list[float]:
    """Seconds per ninja step of this phase in the `last` earlier runs that finished it, from the
    history: the wall time over the steps its log shows (a resumed build did only those left)."""
    from .history import db_path  # here: history imports the build records, which import this
    path = db_path(db)
    if not path.is_file():
        return []
    try:
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT wall_s, log FROM phases WHERE stage = ? AND package = ? AND phase = ? AND exit_code = 0 "
                "AND origin = 'built' ORDER BY rowid DESC LIMIT ?", (stage, package, phase, last)).fetchall()
    except sqlite3.Error:  # an older or foreign database: no estimate from it
        return []
    paces = []
    for wall, logfile in rows:
        steps = ninja_progress(Path(logfile)) if wall and logfile else None
        if steps and steps[0] == steps[1] > 0:  # its log is still there and shows ninja done
            paces.append(wall / steps[1])
    return paces


def estimate_left(done: int, total: int, elapsed: float, paces: list[float]) -> tuple[float, str] | None:
    """Seconds left and where the estimate comes from: the steps left at the median pace of earlier
    runs, or at the pace of this run so far."""
    if total <= 0:
        return None
    if paces:
        return statistics.median(paces) * (total - done), f"from {len(paces)} earlier run(s)"
    if done <= 0:
        return None
    return elapsed / done * (total - done), "from the pace so far"


def describe(label: str, done: int, total: int, elapsed: float, paces: list[float]) -> str:
    text = f"{label}: {done}/{total} steps ({100 * done / total:.0f}%) after {elapsed / 60:.1f} min"
    est = estimate_left(done, total, elapsed, paces)
    if est:
        text += f", about {est[0] / 60:.0f} min left ({est[1]})"
    return text


@contextmanager
def watch(logfile: Path, label: str, paces: list[float], every: float = 60.0) -> Iterator[None]:
    """Log the progress of a running ninja build every `every` seconds, until the block ends."""
    stop = threading.Event()
    start = time.monotonic()

    def loop() -> None:
        last = None
        while not stop.wait(every):
            now = ninja_progress(logfile)
            if now and now != last:
                log.info("%s", describe(label, *now, time.monotonic() - start, paces))
                last = now

    thread = threading.Thread(target=loop, name=f"progress {label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
