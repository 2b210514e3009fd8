"""Hashes: the one digest every key (cache, seed, stage) is made with, the one file hash, and the
one fixed date that every made thing carries instead of today's."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .files import walk

SOURCE_DATE_EPOCH = "1577836800"  # 2020-01-01: fixed, so what embeds a date is the same bytes any day


def digest(*parts: object) -> str:
    """sha256 over the JSON of each part (keys sorted), so equal data gives equal keys anywhere."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def stream_hashes(fh: BinaryIO, *algorithms: str, sink: Callable[[bytes], object] | None = None) -> dict[str, str]:
    """Hex digests of what `fh` holds from here on, one per algorithm (sha256, sha1, ...), read
    once; each block also goes to `sink` (a file written while it is hashed) when given."""
    hs = {a: hashlib.new(a) for a in algorithms or ("sha256",)}
    for block in iter(lambda: fh.read(1 << 20), b""):
        for h in hs.values():
            h.update(block)
        if sink is not None:
            sink(block)
    return {a: h.hexdigest() for a, h in hs.items()}


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return stream_hashes(fh, "sha256")["sha256"]


def describe(path: Path, st: os.stat_result) -> str:
    """What an entry is, all of it that two copies must share: a file's mode and sha256, a link's
    target, a directory's mode, or the kind of anything else."""
    mode = f"{stat.S_IMODE(st.st_mode):04o}"
    if stat.S_ISLNK(st.st_mode):
        return "link -> " + os.readlink(path)
    if stat.S_ISREG(st.st_mode):
        return f"file {mode} {sha256_file(path)}"
    if stat.S_ISDIR(st.st_mode):
        return f"dir {mode}"
    return f"special {stat.S_IFMT(st.st_mode):o} {mode}"


def listing(top: Path) -> dict[str, str]:
    """Every entry under `top`, relative to it, described (see `describe`)."""
    return {entry.rel: describe(entry.path, entry.st) for entry in walk(top)}


def tree_digest(path: Path, skip: tuple[str, ...] = ()) -> str:
    """The sha256 of a folder's files and links: relative paths, modes and contents, in a fixed
    order; the top-level entries named in `skip` left out."""
    h = hashlib.sha256()
    for entry in walk(path, prune=(lambda e: e.rel in skip) if skip else None):
        if not (entry.is_file or entry.is_link):
            continue
        data = os.readlink(entry.path).encode() if entry.is_link else entry.path.read_bytes()
        h.update(f"{entry.rel}\0{entry.st.st_mode:o}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


__all__ = ["describe", "digest", "listing", "sha256_file", "stream_hashes", "tree_digest"]
