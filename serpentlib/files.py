"""Files and trees: the one tree walk, the one atomic write, the one in-root path resolver."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import DiskFullError


@dataclass(frozen=True)
class Entry:
    """One entry of a tree, as `lstat` sees it: a link is an entry, never followed."""

    path: Path   # where it is
    rel: str     # its path below the tree's top, '/'-separated
    st: os.stat_result

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.st.st_mode)

    @property
    def mode(self) -> int:
        return stat.S_IMODE(self.st.st_mode)

    @property
    def empty(self) -> bool:
        """A directory with nothing in it."""
        with os.scandir(self.path) as it:
            return next(it, None) is None


def walk(top: Path | str, prune: Callable[[Entry], bool] | None = None) -> Iterator[Entry]:
    """Every entry below `top` (not `top` itself), each directory before what it holds and each
    directory's entries by name: the order of their paths' parts. Links are never followed; an
    entry `prune` says yes to is left out, with all below it."""
    top = Path(top)

    def below(directory: Path, prefix: str) -> Iterator[Entry]:
        with os.scandir(directory) as it:
            found = sorted(it, key=lambda e: e.name)
        for item in found:
            entry = Entry(Path(item.path), prefix + item.name, item.stat(follow_symlinks=False))
            if prune is not None and prune(entry):
                continue
            yield entry
            if entry.is_dir:
                yield from below(entry.path, entry.rel + "/")

    return below(top, "")


@contextmanager
def atomic(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through: this process's own `<path>.partial-<pid>`, flushed to disk
    and renamed over `path` when the block ends; removed if it raises. Readers see the old file
    or the new one, never half of it."""
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a leftover (or a planted link) goes; the new file is made, never opened
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy the tree `src` to `dest` (which must not exist), links as links. A full disk is a
    DiskFullError naming the file, never lost among copytree's gathered errors."""
    def copy(a: str, b: str) -> None:
        try:
            shutil.copy2(a, b)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DiskFullError(f"no space left on the device while writing {b}",
                                    f"free space there (df -h {Path(b).parent}) or use another work directory") from None
            raise
    return Path(shutil.copytree(src, dest, symlinks=True, copy_function=copy))


def write_atomic(path: Path, text: str | bytes) -> Path:
    """`text` as the whole of `path`, written atomically (see `atomic`)."""
    with atomic(path) as fh:
        fh.write(text.encode() if isinstance(text, str) else text)
    return path


def resolve_in_root(path: str, readlink: Callable[[str], str | None], follow_last: bool = True) -> str:
    """`path` as the root's own programs see it, as an absolute path inside the root: each link
    (`readlink(rel)` gives its target, None for no link) is followed with `/` the root's, `..`
    never climbs above it. `follow_last=False` leaves a last component that is a link as it is
    (a package's own path through the root's layout links). A link loop ends after 64 links."""
    done: list[str] = []
    parts = [p for p in path.split("/") if p]
    links = 0
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            if part == ".." and done:
                done.pop()
            continue
        target = readlink("/".join(done + [part])) if parts or follow_last else None
        if target is None:
            done.append(part)
            continue
        links += 1
        if links > 64:  # a loop: it ends on the link, inside the root
            return "/" + "/".join(done + [part])
        parts = [p for p in target.split("/") if p] + parts
        if target.startswith("/"):
            done = []
    return "/" + "/".join(done)


def within(base: Path | str, path: Path | str) -> bool:
    """Whether `path`, its links followed on this host, is the real directory `base` or under it."""
    real, top = os.path.realpath(path), os.path.realpath(base)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def leaving_link(root: Path, rel: str, any_link: bool = False) -> str | None:
    """The first link on the way to `root/rel` (a path relative to it) that leads out of `root`
    when followed on this host (with `any_link`: any link at all), as 'path -> target'; None when
    there is none."""
    here = Path(root)
    for part in [p for p in rel.split("/") if p]:
        here = here / part
        if here.is_symlink() and (any_link or not within(root, here)):
            return f"/{here.relative_to(root)} -> {os.readlink(here)}"
    return None


def in_root(root: Path, path: str) -> Path:
    """Where `path`, resolved inside `root` (see resolve_in_root), is on the host."""
    def readlink(rel: str) -> str | None:
        candidate = root / rel
        return os.readlink(candidate) if candidate.is_symlink() else None
    return root / resolve_in_root(path, readlink).lstrip("/")


__all__ = ["Entry", "atomic", "copy_tree", "in_root", "leaving_link", "resolve_in_root", "walk", "within", "write_atomic"]
