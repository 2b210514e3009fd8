"""Binary packages: one xz-compressed tar holding MANIFEST.json and the files under `root/`.

The manifest names the package, lists every file (path, type, mode, size, sha256 or link
target), the runtime dependencies found in its ELF files and scripts, and how it was built.
Archives are reproducible: members sorted, owners 0, times fixed.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError

from ..build.recipes import NAME_RE
from ..elf import elf_info, is_elf
from ..errors import PackageError
from ..files import atomic, resolve_in_root, walk
from ..hashes import sha256_file

FORMAT = 1
MANIFEST = "MANIFEST.json"


def check_name(name: object, what: str) -> str:
    """`name` as a package name (recipes' own pattern: lowercase letters, digits, + . _ -, not
    starting with a symbol); anything else, a path above all, is refused naming `what`."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise PackageError(f"{what}: {name!r} is not a package name",
                           "package names are lowercase letters, digits and + . _ -: the file is damaged or hostile")
    return name
ARCH = "x86_64"


@dataclass(frozen=True)
class FileEntry:
    path: str            # absolute, canonical: "/usr/bin/make"
    type: str            # "file", "link" or "dir"
    mode: int            # permission bits (with setuid/setgid/sticky)
    size: int = 0
    sha256: str = ""
    target: str = ""     # a link's target


@dataclass
class Manifest:
    name: str
    version: str
    release: int
    license: str
    summary: str
    files: list[FileEntry]
    homepage: str = ""
    arch: str = ARCH
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)     # sonames of its shared libraries
    needs: dict[str, list[str]] = field(default_factory=dict)  # "soname:X" / "path:/x" -> files needing it
    build: dict = field(default_factory=dict)
    format: int = FORMAT

    @property
    def installed_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.release}-{self.arch}.tar.xz"

    def to_json(self) -> str:
        data = asdict(self)
        data["installed_size"] = self.installed_size
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise PackageError("a manifest is not a JSON object", "the package is damaged or hostile")
        data.pop("installed_size", None)
        if data.get("format") != FORMAT:
            raise PackageError(f"manifest of {data.get('name')!r} has format {data.get('format')}, not {FORMAT}",
                               "rebuild the repository with this serpentlib")
        check_name(data.get("name"), "a manifest")
        for dep in data.get("depends", []):
            check_name(dep, f"the manifest of {data['name']}: depends")
        data["files"] = [FileEntry(**f) for f in data["files"]]
        return cls(**data)


def canonical(path: str, links: dict[str, str]) -> str:
    """`path` (relative to a root) with its leading directories followed through the root's layout
    links, e.g. lib/ld-musl.so -> /usr/lib/ld-musl.so when lib -> usr/lib."""
    return resolve_in_root(path, links.get, follow_last=False)


def scan_tree(tree: Path, links: dict[str, str]) -> tuple[list[FileEntry], dict[str, Path]]:
    """Every file and link under `tree` (a DESTDIR) by canonical path, and where each one is.
    Directories are implied, but for empty ones and ones of another mode than 755 (a spool
    directory, a sticky one); two entries landing on one path is an error."""
    entries: dict[str, FileEntry] = {}
    where: dict[str, Path] = {}
    for item in walk(tree):
        path = canonical(item.rel, links)
        if item.is_dir:
            if item.mode != 0o755 or item.empty:
                entries[path], where[path] = FileEntry(path, "dir", item.mode), item.path
            continue
        if item.is_link:
            entry = FileEntry(path, "link", 0o777, target=os.readlink(item.path))
        elif item.is_file:
            entry = FileEntry(path, "file", item.mode, item.st.st_size, sha256_file(item.path))
        else:
            raise PackageError(f"{item.path}: neither a file, a link nor a directory",
                               "packages hold no device nodes or fifos")
        if path in entries:
            raise PackageError(f"{tree}: {item.rel} and {where[path].relative_to(tree)} both land on {path}",
                               "install only one of them (the root's layout links merge these directories)")
        entries[path], where[path] = entry, item.path
    return [entries[k] for k in sorted(entries)], where


def interpreter_of(path: Path) -> str | None:
    """The program a `#!` script names."""
    with open(path, "rb") as fh:
        head = fh.read(256)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words else None


def path_needs(path: str, links: dict[str, str]) -> list[str]:
    """An absolute path a file names (its interpreter): the file itself, and the layout link the
    path goes through, if any (/lib/ld-musl... needs the /lib link as much as the loader)."""
    rel = path.lstrip("/")
    out = [f"path:{canonical(rel, links)}"]
    parts = PurePosixPath(rel).parts
    for i in range(1, len(parts)):
        if "/".join(parts[:i]) in links:
            out.append(f"path:/{'/'.join(parts[:i])}")
            break
    return out


def needs_of(entries: list[FileEntry], where: dict[str, Path], links: dict[str, str]) -> tuple[dict, list[str]]:
    """What the package's files need at run time ("soname:libz.so.1", "path:/usr/bin/sh"), and
    the sonames it provides."""
    needs: dict[str, list[str]] = {}
    provides = []
    for e in entries:
        if e.type != "file" or not e.mode & 0o111 and ".so" not in e.path:
            continue
        p = where[e.path]
        if is_elf(p):
            try:
                info = elf_info(p)
            except ELFError:
                continue
            wants = [f"soname:{n}" for n in info.needed]
            if info.interpreter:
                wants += path_needs(info.interpreter, links)
            if info.soname:
                provides.append(info.soname)
            elif ".so" in Path(e.path).name and not info.interpreter:  # musl's libc.so has no SONAME
                provides.append(Path(e.path).name)
        else:
            interp = interpreter_of(p)
            wants = path_needs(interp, links) if interp and interp.startswith("/") else []
        for w in wants:
            needs.setdefault(w, []).append(e.path)
    return needs, sorted(set(provides))


def write_archive(manifest: Manifest, where: dict[str, Path], out_dir: Path, mtime: int) -> Path:
    """The package file; written to a temporary name and renamed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / manifest.filename

    def info(name: str, **kw) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = mtime, 0, 0, "", ""
        for k, v in kw.items():
            setattr(ti, k, v)
        return ti

    with atomic(final) as out, tarfile.open(fileobj=out, mode="w:xz", format=tarfile.PAX_FORMAT, preset=6) as tar:
        data = manifest.to_json().encode()
        tar.addfile(info(MANIFEST, size=len(data), mode=0o644), io.BytesIO(data))
        for e in manifest.files:
            name = "root" + e.path
            if e.type == "link":
                tar.addfile(info(name, type=tarfile.SYMTYPE, linkname=e.target, mode=0o777))
            elif e.type == "dir":
                tar.addfile(info(name, type=tarfile.DIRTYPE, mode=e.mode))
            else:
                with open(where[e.path], "rb") as fh:
                    tar.addfile(info(name, size=e.size, mode=e.mode), fh)
    return final


def read_manifest(archive: Path) -> Manifest:
    """The manifest of a package file (its first member)."""
    try:
        with tarfile.open(archive, "r:xz") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST:
                raise PackageError(f"{archive}: not a serpent package (no {MANIFEST} first)",
                                   "rebuild the repository: serpent run --stage 4")
            return Manifest.from_json(tar.extractfile(member).read().decode())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PackageError(f"{archive}: unreadable package: {exc}", "rebuild the repository: serpent run --stage 4") from None


__all__ = ["FileEntry", "Manifest", "PackageError", "canonical", "needs_of", "read_manifest", "scan_tree",
           "sha256_file", "write_archive"]
