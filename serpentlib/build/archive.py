"""Safe extraction of source archives: nothing lands outside the folder it is extracted into.

Where the Python has tarfile's extraction filters, every member goes through the `data` filter.
Where it has not (Debian 12's Python 3.11.2), every member is contained by the real path it is
written to, links followed as they are on disk at that moment, so a chain of links
(`s -> .`, `s/x -> ..`, `x/ESCAPED`) is caught where a textual check is not. Either way:
absolute names, `..`, devices and fifos are refused; setuid, setgid, sticky and group/other
write bits are dropped; and a last pass refuses any link in the tree that resolves outside it.
This module needs only the standard library, so the tests can run it under another Python.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from ..errors import SourceError, UnsafeArchiveError
from ..files import walk, within

HAS_FILTERS = hasattr(tarfile, "data_filter")
_KINDS = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}


def _unsafe(archive: Path, what: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive.name}: {what}", "this archive is not safe to extract; check its origin")


def _member_path(member: tarfile.TarInfo, strip: int, archive: Path) -> PurePosixPath | None:
    name = PurePosixPath(member.name)
    if name.is_absolute():
        raise _unsafe(archive, f"member '{member.name}' has an absolute path")
    if ".." in name.parts:
        raise _unsafe(archive, f"member '{member.name}' contains '..'")
    parts = [p for p in name.parts if p != "."][strip:]
    return PurePosixPath(*parts) if parts else None


def _selected(rel: PurePosixPath, only: Sequence[str]) -> bool:
    if not only:
        return True
    s = rel.as_posix()
    return any(s == p.rstrip("/") or s.startswith(p.rstrip("/") + "/") for p in only)


def _data_mode(member: tarfile.TarInfo) -> int:
    """The mode the `data` filter gives, so both paths make the same tree: no setuid, setgid or
    sticky bit, nothing group- or world-writable, files readable and writable by their owner."""
    if member.isdir():
        return 0o755
    mode = member.mode & 0o755
    if member.isfile() or member.islnk():
        mode = (mode if mode & 0o100 else mode & ~0o111) | 0o600
    return mode


def _members(tar: tarfile.TarFile, archive: Path, only: Sequence[str], strip: int) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """Each member to extract (its name as in the archive, the member renamed and tamed). Every
    member is judged before `strip` or `only` leave it out: a device, fifo or socket anywhere is
    refused, and a hard link may name only a regular file extracted before it into this tree."""
    extracted: set[str] = set()  # the regular files extracted so far, by their names in the tree
    for member in tar:
        original = member.name
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise _unsafe(archive, f"member '{original}' is a {_KINDS.get(member.type, 'special file')}")
        rel = _member_path(member, strip, archive)
        target = PurePosixPath(member.linkname)
        if (member.issym() or member.islnk()) and target.is_absolute():
            raise _unsafe(archive, f"link '{original}' -> '{member.linkname}' is absolute: it leads out of the tree")
        if member.islnk() and ".." in target.parts:
            raise _unsafe(archive, f"link '{original}' -> '{member.linkname}' leads out of the tree")
        if rel is None or not _selected(rel, only):
            continue
        if member.islnk():  # names another member, relative to the archive's top
            parts = [p for p in target.parts if p != "."][strip:]
            if not parts:
                raise _unsafe(archive, f"link '{original}' -> '{member.linkname}' leads out of the tree")
            member.linkname = PurePosixPath(*parts).as_posix()
            if member.linkname not in extracted:
                raise _unsafe(archive, f"hard link '{original}' -> '{target}' names no regular file extracted into "
                                       "the tree before it (a device, a member left out, or none)")
        member.name = rel.as_posix()
        member.mode = _data_mode(member)
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        if member.isfile():
            extracted.add(member.name)
        else:
            extracted.discard(member.name)  # replaced by a directory or a link
        yield original, member


def _contain(member: tarfile.TarInfo, original: str, base: str, archive: Path) -> None:
    """Without filters: refuse a member whose real path, or whose link's real target, is outside
    `base`; remove a link already standing where the member goes, so nothing is written through it."""
    path = os.path.join(base, member.name)
    if not within(base, os.path.dirname(path)):
        raise _unsafe(archive, f"member '{original}' would be written outside the tree, through a link")
    if member.issym():
        target = os.path.join(os.path.dirname(path), member.linkname)
    elif member.islnk():
        target = os.path.join(base, member.linkname)
    else:
        target = path
    if (member.issym() or member.islnk()) and not within(base, target):
        raise _unsafe(archive, f"link '{original}' -> '{member.linkname}' leads out of the tree")
    if os.path.islink(path):
        os.unlink(path)


def _extract_members(tar: tarfile.TarFile, archive: Path, into: Path, only: Sequence[str], strip: int,
                     filtered: bool) -> None:
    base = os.path.realpath(into)
    for original, member in _members(tar, archive, only, strip):
        try:
            if filtered:
                tar.extract(member, base, set_attrs=not member.issym(), numeric_owner=True, filter="data")
            else:
                _contain(member, original, base, archive)
                tar.extract(member, base, set_attrs=not member.issym(), numeric_owner=True)
        except KeyError as exc:  # a hard link to a member that is not there
            raise UnsafeArchiveError(f"{archive.name}: {exc.args[0]}", "the archive is broken") from None
        except tarfile.TarError as exc:  # a FilterError where filters exist
            if type(exc).__name__ in ("ReadError", "CompressionError", "StreamError", "HeaderError"):
                raise
            raise _unsafe(archive, f"member '{original}': {exc}") from None


def _check_links(tree: Path, archive: Path) -> None:
    """Refuse any link in the finished tree that resolves outside it."""
    base = os.path.realpath(tree)
    for entry in walk(base):
        if entry.is_link and not within(base, str(entry.path)):
            raise _unsafe(archive, f"link '{entry.rel}' -> '{os.readlink(entry.path)}' leads out of the tree")


def publish(partial: Path, dest: Path) -> None:
    """Rename the finished `partial` to `dest`, replacing what was there."""
    if dest.exists() or dest.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / "tree")
        os.replace(partial, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, dest)


def extract(archive: Path, dest: Path, only: Sequence[str] = (), strip: int = 1,
            filtered: bool = HAS_FILTERS) -> Path:
    """Extract `archive` into `dest`, safely; `filtered` picks the `data` filter (where there is one)
    or our own containment.

    Unpacks into a folder of this process's own beside `dest` and renames it on success, so a
    refused or broken archive leaves nothing behind, and two processes never share one.
    """
    if filtered and not HAS_FILTERS:
        raise SourceError("this Python's tarfile has no extraction filters", "extract with filtered=False")
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        partial.chmod(0o755)
        with tarfile.open(archive, "r:*") as tar:
            _extract_members(tar, archive, partial, only, strip, filtered)
        _check_links(partial, archive)
        missing = [p for p in only if not (partial / p).exists()]
        if missing:
            raise SourceError(f"{archive.name}: no {', '.join(missing)} inside",
                              "fix the source's `extract` list in the recipe")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish(partial, dest)
    return dest


__all__ = ["HAS_FILTERS", "extract", "publish"]
