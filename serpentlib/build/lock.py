"""The one lock: an exclusive `flock` on a file, which the kernel drops when its holder exits,
however it exits. The file says who holds it (pid, purpose, since), for the message of whoever
finds it taken.

Uses: one run per work directory (`serpent run` takes it and tells the notebooks it runs,
SERPENT_WORK_LOCK, so their stages do not take it again); one extraction of a source tree at a
time; one package transaction per root.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SerpentError

ENV = "SERPENT_WORK_LOCK"
_held: dict[Path, int] = {}


def _take(path: Path, wait: bool, purpose: str | None, busy: Callable[[dict], SerpentError]) -> int:
    """Lock `path` (made if missing) and write who holds it (not when `purpose` is None: a lock
    inside a root leaves the root as it was); waits, or raises `busy(holder)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)  # a planted link is refused (ELOOP)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        raise busy(_holder(path)) from None
    if purpose is None:
        return fd
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
    return fd


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextmanager
def exclusive(path: Path, wait: bool = True, purpose: str | None = "",
              busy: Callable[[dict], SerpentError] | None = None) -> Iterator[None]:
    """Hold the lock on `path` for the block: waiting while another process holds it, or with
    `wait=False` raising `busy(holder)` at once."""
    fd = _take(Path(path), wait, purpose, busy or (lambda h: SerpentError(f"{path} is locked by pid {h.get('pid')}")))
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _ancestors() -> set[int]:
    """The pids of this process's parent, its parent, and so on."""
    found, pid = set(), os.getpid()
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        found.add(pid)
    return found


def _handed_down(base: Path) -> bool:
    """Whether a process this one descends from holds the lock on `base` now and said so (see
    `hand_down`): an inherited or forged SERPENT_WORK_LOCK alone is not enough."""
    path, _, pid = os.environ.get(ENV, "").rpartition(":")
    if path != str(base) or not pid.isdigit() or int(pid) not in _ancestors():
        return False
    held = holder(base)
    return held is not None and held.get("pid") == int(pid)


def lock_work_dir(base: Path, purpose: str = "") -> None:
    """Lock `base` for this process's lifetime, or raise SerpentError naming the holder."""
    base = Path(base).resolve()
    if base in _held or _handed_down(base):
        return

    def busy(holder: dict) -> SerpentError:
        return SerpentError(f"the work directory {base} is in use by another run (pid {holder.get('pid', '?')}, "
                            f"{holder.get('purpose', 'serpent')}, since {holder.get('since', '?')})",
                            "wait for it to finish, or give this run another --work-dir")

    _held[base] = _take(base / ".lock", False, purpose, busy)


def holder(base: Path) -> dict | None:
    """Who holds the lock on `base` now ({pid, purpose, since}), or None when nobody does; it
    takes nothing (a look, for what only reads the work directory)."""
    path = Path(base).resolve() / ".lock"
    if not path.is_file():
        return None
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def hand_down(base: Path) -> None:
    """Let child processes (the notebook kernels) know this process holds the lock on `base`."""
    os.environ[ENV] = f"{Path(base).resolve()}:{os.getpid()}"
