"""A repository: package files plus `index.json`, which holds each package's file name, sha256,
size, dependencies and what it provides, and `index.json.sig`, its ed25519 signature. The index is
checked against the keys a root trusts before use, and every package re-hashed against the index."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from . import keys
from ..files import write_atomic
from ..errors import PackageError
from ..hashes import digest, sha256_file, stream_hashes
from .package import Manifest, check_name, read_manifest

INDEX = "index.json"
SIGNATURE = INDEX + ".sig"


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    release: int
    file: str
    sha256: str
    size: int
    installed_size: int
    depends: tuple[str, ...]
    provides: tuple[str, ...]
    summary: str
    license: str


VALID_FOR = 10 * 365 * 86400  # an index's life, from its serial, by default


def write_index(repo: Path, manifests: list[Manifest], store: keys.KeyStore | None = None,
                serial: int | None = None, valid_for: int = VALID_FOR) -> Path:
    """Hash each package file, write the index and sign it with the key store's signing key (made
    on first use); each file is written to a temporary name and renamed. The index carries a
    `serial`, which orders indexes (a root refuses one older than it has accepted), and `expires`,
    `valid_for` seconds after the packages were first signed: by default both come from the key
    store, which gives each new set of packages the next serial and the same set its own again, so
    the same packages give the same index, byte for byte."""
    store = store or keys.KeyStore()
    packages = {}
    for m in sorted(manifests, key=lambda m: m.name):
        path = repo / m.filename
        packages[m.name] = {"version": m.version, "release": m.release, "file": m.filename,
                            "sha256": sha256_file(path), "size": path.stat().st_size,
                            "installed_size": m.installed_size, "depends": m.depends, "provides": m.provides,
                            "summary": m.summary, "license": m.license}
    if serial is None:
        serial, signed = store.serial_for(digest(packages))
    else:
        signed = serial
    text = json.dumps({"format": 1, "serial": serial, "expires": signed + valid_for, "packages": packages},
                      indent=1, sort_keys=True) + "\n"
    kid, key = store.signing_key_or_new()
    write_atomic(repo / SIGNATURE, keys.sign(text.encode(), kid, key))
    return write_atomic(repo / INDEX, text)


def trusted_keys(root: Path, extra: tuple[Path, ...] = ()) -> dict[str, keys.PublicKey]:
    """The keys an install into `root` trusts: those in the root's /etc/serpent/keys, the local
    key store's (the keys this user signs with) and `extra` (files or directories)."""
    return keys.public_keys(Path(root) / keys.ROOT_KEYS, keys.KeyStore().path, *extra)


class Repository:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        index = self.path / INDEX
        if not index.is_file():
            raise PackageError(f"{self.path} is not a repository (no {INDEX})",
                               "give the stage4 repository: <work>/stage4/repo, made by serpent run --stage 4")
        self.index_bytes = index.read_bytes()   # what the signature is checked against, read once
        self.signed_by: keys.PublicKey | None = None
        try:
            data = json.loads(self.index_bytes)
            self.serial, self.expires = int(data.get("serial", 0)), int(data.get("expires", 0))
            self.entries = {name: Entry(name=name, **{**e, "depends": tuple(e["depends"]), "provides": tuple(e["provides"])})
                            for name, e in data["packages"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise PackageError(f"{index} is damaged: {exc!r}", "get the repository again or rebuild it") from None
        for e in self.entries.values():  # nothing named in an index may be a path
            check_name(e.name, f"{index}: a package")
            for dep in e.depends:
                check_name(dep, f"{index}: {e.name} depends on")
            if e.file != Path(e.file).name or e.file in (".", ".."):
                raise PackageError(f"{index}: {e.name}'s file {e.file!r} is not a file name in the repository",
                                   "the index is damaged or hostile: get the repository again or rebuild it")

    def verify_signature(self, trusted: dict[str, keys.PublicKey]) -> keys.PublicKey:
        """The key that signed the index; TrustError if it is unsigned, signed by a key not in
        `trusted`, or the signature does not match."""
        self.signed_by = keys.verify(self.index_bytes, self.path / SIGNATURE, trusted, f"the index of {self.path}")
        return self.signed_by

    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            near = difflib.get_close_matches(name, self.entries, n=1)
            raise PackageError(f"no package '{name}' in {self.path}",
                               f"did you mean '{near[0]}'?" if near else "see `serpent pkg list --repo`")
        return self.entries[name]

    def archive(self, name: str) -> Path:
        """The package file, verified against the index."""
        e = self.entry(name)
        path = self.path / e.file
        if not path.is_file():
            raise PackageError(f"{path}: missing from the repository", "rebuild the repository: serpent run --stage 4")
        got = sha256_file(path)
        if got != e.sha256:
            raise PackageError(f"{path}: sha256 {got} differs from the index's {e.sha256}",
                               "the file was changed or damaged: rebuild the repository")
        return path

    def fetch(self, name: str, into: Path) -> Path:
        """A private copy of the package file in `into`, hashed as it is copied and checked against
        the index: what is installed is what was hashed, whatever happens to the repository's file."""
        e = self.entry(name)
        into.mkdir(parents=True, exist_ok=True)
        copy = into / e.file
        try:
            with open(self.path / e.file, "rb") as src, open(copy, "wb") as dst:
                got = stream_hashes(src, "sha256", sink=dst.write)["sha256"]
        except FileNotFoundError:
            raise PackageError(f"{self.path / e.file}: missing from the repository",
                               "rebuild the repository: serpent run --stage 4") from None
        if got != e.sha256:
            copy.unlink()
            raise PackageError(f"{self.path / e.file}: sha256 {got} differs from the index's {e.sha256}",
                               "the file was changed or damaged: rebuild the repository")
        return copy

    def manifest(self, name: str) -> Manifest:
        return read_manifest(self.archive(name))

    def closure(self, names: list[str], skip: set[str] = frozenset()) -> list[str]:
        """`names` and everything they depend on, dependencies first (run-time dependencies may
        form cycles: those are installed together); `skip` (installed) left out."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.entry(name).depends:
                visit(dep)
            order.append(name)

        for name in names:
            visit(name)
        return [n for n in order if n not in skip]


__all__ = ["Entry", "INDEX", "Repository", "SIGNATURE", "trusted_keys", "write_index"]
