"""One run per work directory: an exclusive lock held for the run's lifetime.

`serpent run` takes it and tells the notebooks it runs (SERPENT_WORK_LOCK), so their stages
do not take it again; a second run on the same work directory refuses at once, saying who
holds it. The kernel drops the lock when its holder exits, however it exits.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SerpentError

ENV = "SERPENT_WORK_LOCK"
_held: dict[Path, int] = {}


def lock_work_dir(base: Path, purpose: str = "") -> None:
    """Lock `base` for this process, or raise SerpentError naming the holder."""
    base = Path(base).resolve()
    if base in _held or os.environ.get(ENV) == str(base):
        return
    base.mkdir(parents=True, exist_ok=True)
    path = base / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _holder(path)
        raise SerpentError(
            f"the work directory {base} is in use by another run (pid {holder.get('pid', '?')}, "
            f"{holder.get('purpose', 'serpent')}, since {holder.get('since', '?')})",
            "wait for it to finish, or give this run another --work-dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
    _held[base] = fd


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


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
    os.environ[ENV] = str(Path(base).resolve())


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing), waiting while another
    process holds it; the kernel drops it when the holder exits, however it exits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
