"""A package's contents, held to its manifest and to the root before anything is installed.

Every manifest path must be a clean absolute path that stays in the root: no `..`, `.` or empty
part, not under a link (the package's own, another package's, or one already on disk that
leads out). The tar must be the manifest exactly: the same members, once each, of the same
types, modes and link targets; links are made with the manifest's targets. Anything else is
refused, naming the package and the path, while the root is still untouched.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from ..files import within
from ..errors import PackageError
from ..hashes import stream_hashes
from .package import MANIFEST, FileEntry, Manifest

_KIND = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.SYMTYPE: "link", tarfile.DIRTYPE: "dir",
         tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
         tarfile.FIFOTYPE: "fifo"}


def _refuse(package: str, path: str, what: str) -> PackageError:
    return PackageError(f"{package}: {path}: {what}; nothing was installed",
                        "the package is damaged or hostile: rebuild the repository from sources you trust")


STATE = "/var/lib/serpent"  # the installer's own: its database, journal and staging area


def check_path(package: str, path: str) -> str:
    """`path` as a package may name it: clean, absolute, inside the root, and not in the
    installer's own state (a package shipping installed/<x>.json would rewrite the database)."""
    if not isinstance(path, str) or not path.startswith("/") or path == "/" or "\0" in path \
            or any(part in ("", ".", "..") for part in path[1:].split("/")):
        raise _refuse(package, str(path), "not a clean absolute path inside the root")
    if path == STATE or path.startswith(STATE + "/"):
        raise _refuse(package, path, f"lies in the installer's own state ({STATE})")
    return path


def check_paths(root: Path, manifests: Iterable[Manifest], installed: Iterable[Manifest]) -> None:
    """Refuse any path of `manifests` that could lead out of `root` (see the module's text)."""
    manifests = list(manifests)
    links = {f.path: m.name for m in [*installed, *manifests] for f in m.files if f.type == "link"}
    base = os.path.realpath(root)
    for m in manifests:
        for f in m.files:
            check_path(m.name, f.path)
            parts = f.path[1:].split("/")
            for i in range(1, len(parts)):
                above = "/" + "/".join(parts[:i])
                if above in links:
                    raise _refuse(m.name, f.path, f"lies under the link {above} (of {links[above]})")
            host = os.path.join(base, *parts)
            if not within(base, os.path.dirname(host)) or f.type == "dir" and not within(base, host):
                raise _refuse(m.name, f.path, f"would be written outside the root {base}, through a link on disk")


def _matches(member: tarfile.TarInfo, f: FileEntry) -> str | None:
    """What is wrong with `member` as the manifest's `f`, or None."""
    kind = _KIND.get(member.type, "special file")
    if kind != f.type:
        return f"a {kind} in the package file but a {f.type} in its manifest"
    if kind == "link":
        return None if member.linkname == f.target else \
            f"a link to '{member.linkname}' in the package file but to '{f.target}' in its manifest"
    if member.mode != f.mode:
        return f"mode {member.mode:o} in the package file but {f.mode:o} in its manifest"
    if kind == "file" and member.size != f.size:
        return f"{member.size} bytes in the package file but {f.size} in its manifest"
    return None


def unpack(archive: Path, manifest: Manifest, dest: Path) -> None:
    """Extract the package's files into `dest` (a staging folder), each checked against the manifest."""
    entries = {f.path: f for f in manifest.files}
    seen: set[str] = set()
    made: set[Path] = set()
    with tarfile.open(archive, "r:xz") as tar:
        for index, member in enumerate(tar):
            if index == 0 and member.name == MANIFEST:
                continue
            path = "/" + member.name.removeprefix("root/")
            f = entries.get(path) if member.name.startswith("root/") else None
            if f is None:
                raise _refuse(manifest.name, member.name, f"in {archive.name} but not in its manifest")
            if path in seen:
                raise _refuse(manifest.name, path, f"in {archive.name} twice")
            seen.add(path)
            wrong = _matches(member, f)
            if wrong:
                raise _refuse(manifest.name, path, wrong)
            if f.type == "dir":
                continue
            out = dest / path.lstrip("/")
            if out.parent not in made:
                out.parent.mkdir(parents=True, exist_ok=True)
                made.add(out.parent)
            if f.type == "link":
                os.symlink(f.target, out)
                continue
            with tar.extractfile(member) as src, open(out, "wb") as dst:
                got = stream_hashes(src, "sha256", sink=dst.write)["sha256"]
            os.chmod(out, f.mode)
            if got != f.sha256:
                raise _refuse(manifest.name, path, "does not match its manifest's sha256")
    missing = sorted(set(entries) - seen)
    if missing:
        raise _refuse(manifest.name, missing[0], f"in its manifest but not in {archive.name}"
                      + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


__all__ = ["check_paths", "unpack"]
