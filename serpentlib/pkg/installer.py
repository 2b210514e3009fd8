"""Package management in a root: install (with dependencies), remove, list, verify.

The database is `<root>/var/lib/serpent/installed/<name>.json` (the manifests). Changes are
transactions: a journal listing every path the change touches is written before the root is
changed, and removed (the commit) after the database is updated. A failure or an interrupt
rolls back at once; a run killed outright leaves the journal, and the next command on the
root rolls it back first. Conflicts are found before anything is touched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..build.lock import exclusive
from ..files import write_atomic
from .contents import check_paths, unpack
from .keys import PublicKey
from ..errors import ConflictError, PackageError
from ..hashes import sha256_file
from .package import FileEntry, Manifest, read_manifest
from .repo import Repository, trusted_keys

log = logging.getLogger(__name__)
DB = Path("var/lib/serpent")


@dataclass(frozen=True)
class Problem:
    package: str
    path: str
    problem: str   # missing, modified, mode, type, target


class Root:
    """A root file system managed by serpent packages."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_dir():
            raise PackageError(f"{self.path}: no such root directory", "create it first, or check --root")
        self.db = self.path / DB
        self.installed_dir = self.db / "installed"
        self.journal = self.db / "transaction.json"
        self.staging = self.db / "staging"

    # -- the database --------------------------------------------------------------------------
    def installed(self) -> dict[str, Manifest]:
        if not self.installed_dir.is_dir():
            return {}
        return {p.stem: Manifest.from_json(p.read_text()) for p in sorted(self.installed_dir.glob("*.json"))}

    def owners(self) -> dict[str, str]:
        """Path -> the package that owns it (directories excluded: those are shared)."""
        return {f.path: m.name for m in self.installed().values() for f in m.files if f.type != "dir"}

    def host(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One change at a time; a journal left by a killed run is rolled back first."""
        def busy(holder: dict) -> PackageError:
            return PackageError(f"{self.path}: another package operation is running on this root",
                                "wait for it to finish")
        with exclusive(self.db / "lock", wait=False, purpose=None, busy=busy):
            self.recover()
            yield

    # -- transactions --------------------------------------------------------------------------
    def recover(self) -> str | None:
        """Roll back an interrupted transaction; returns what was rolled back."""
        if not self.journal.is_file():
            return None
        tx = json.loads(self.journal.read_text())
        self._rollback(tx)
        what = f"rolled back an interrupted {tx['op']} of {', '.join(tx['packages'])} (started {tx['started']})"
        log.warning("%s: %s", self.path, what)
        return what

    def _rollback(self, tx: dict) -> None:
        if tx["op"] == "install":
            for path in reversed(tx["paths"]):
                p = self.host(path)
                if p.is_symlink() or p.is_file():
                    p.unlink()
            for d in reversed(tx["dirs"]):
                try:
                    self.host(d).rmdir()
                except OSError:
                    pass
            for name in tx["packages"]:
                (self.installed_dir / f"{name}.json").unlink(missing_ok=True)
        else:  # remove: put back what was moved aside
            trash = Path(tx["trash"])
            for path in tx["paths"]:
                moved = trash / path.lstrip("/")
                if moved.is_symlink() or moved.exists():
                    self.host(path).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(moved, self.host(path))
            for name, text in tx["manifests"].items():
                write_atomic(self.installed_dir / f"{name}.json", text)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.journal.unlink()

    def _begin(self, tx: dict) -> None:
        tx["started"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_atomic(self.journal, json.dumps(tx))

    def _commit(self) -> None:
        self.journal.unlink()
        shutil.rmtree(self.staging, ignore_errors=True)

    # -- install -------------------------------------------------------------------------------
    def install(self, repo: Repository, names: list[str], on_file: Callable[[str], None] = lambda path: None,
                trusted: dict[str, PublicKey] | None = None, insecure: bool = False) -> list[str]:
        """Install `names` and their dependencies from `repo`, whose index must be signed by a key
        in `trusted` (default: the keys the root and the local key store hold) unless `insecure`;
        returns what was installed."""
        with self.locked():
            if not insecure:
                repo.verify_signature(trusted_keys(self.path) if trusted is None else trusted)
            installed = self.installed()
            plan = repo.closure(names, skip=set(installed))
            if not plan:
                return []
            archives = {n: repo.archive(n) for n in plan}  # each checked against the index once
            manifests = {n: read_manifest(archives[n]) for n in plan}
            check_paths(self.path, manifests.values(), installed.values())
            self._check_conflicts(manifests)
            self.staging.mkdir(parents=True, exist_ok=True)
            try:
                for name in plan:
                    self._unpack(archives[name], manifests[name], self.staging / name)
            except BaseException:  # the root is untouched so far: only the staging area goes
                shutil.rmtree(self.staging, ignore_errors=True)
                raise
            paths, dirs, known = [], [], set()
            for m in manifests.values():
                for f in m.files:
                    dirs += self._missing_dirs(f.path, known, include_self=f.type == "dir")
                    if f.type != "dir":
                        paths.append(f.path)
            tx = {"op": "install", "packages": plan, "paths": paths, "dirs": dirs}
            self._begin(tx)
            try:
                for d in dirs:
                    self.host(d).mkdir()
                for m in manifests.values():
                    for f in m.files:
                        if f.type == "dir":
                            os.chmod(self.host(f.path), f.mode)
                            continue
                        os.replace(self.staging / m.name / f.path.lstrip("/"), self.host(f.path))
                        on_file(f.path)
                self.installed_dir.mkdir(parents=True, exist_ok=True)
                for m in manifests.values():
                    write_atomic(self.installed_dir / f"{m.name}.json", m.to_json())
            except BaseException as exc:
                self._rollback(tx)
                if isinstance(exc, Exception) and not isinstance(exc, PackageError):
                    raise PackageError(f"installing {', '.join(plan)} into {self.path} failed and was rolled back: "
                                       f"{exc}", "the root is as it was; fix the cause and try again") from exc
                raise
            self._commit()
            return plan

    def _missing_dirs(self, path: str, known: set[str], include_self: bool = False) -> list[str]:
        """The directories leading to `path` that do not exist yet, parents first; `known`
        remembers the ones already looked at."""
        out = []
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + (1 if include_self else 0)):
            d = "/" + "/".join(parts[:i])
            if d in known:
                continue
            known.add(d)
            p = self.host(d)
            if not (p.exists() or p.is_symlink()):
                out.append(d)
        return out

    def _check_conflicts(self, manifests: dict[str, Manifest]) -> None:
        owners = self.owners()
        for m in manifests.values():
            for f in m.files:
                p = self.host(f.path)
                if f.type == "dir":
                    if (p.exists() or p.is_symlink()) and not p.is_dir():
                        raise ConflictError(f"{m.name} needs the directory {f.path}, but a file is there",
                                            "remove that file, or fix the package")
                    continue
                if f.path in owners:
                    raise ConflictError(f"{m.name} and {owners[f.path]} both claim {f.path}",
                                        f"remove {owners[f.path]} first, or fix one of the packages; nothing was installed")
                if p.exists() or p.is_symlink():
                    raise ConflictError(f"{m.name}: {f.path} already exists in {self.path} and no package owns it",
                                        "move it away first; nothing was installed")
                owners[f.path] = m.name

    def _unpack(self, archive: Path, manifest: Manifest, dest: Path) -> None:
        """Extract the package's files into the staging area, each checked against the manifest."""
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        unpack(archive, manifest, dest)

    # -- remove --------------------------------------------------------------------------------
    def remove(self, names: list[str]) -> list[str]:
        with self.locked():
            installed = self.installed()
            for name in names:
                if name not in installed:
                    raise PackageError(f"{name} is not installed in {self.path}", "see `serpent pkg list`")
            users = {m.name: [d for d in m.depends if d in names] for m in installed.values() if m.name not in names}
            users = {k: v for k, v in users.items() if v}
            if users:
                who = "; ".join(f"{k} needs {', '.join(v)}" for k, v in sorted(users.items()))
                raise PackageError(f"cannot remove {', '.join(names)}: {who}", "remove those packages too, in one command")
            shared = {f.path for m in installed.values() if m.name not in names for f in m.files if f.type == "dir"}
            paths = [f.path for n in names for f in installed[n].files if f.type != "dir"]
            trash = self.staging / "removed"
            tx = {"op": "remove", "packages": names, "paths": paths, "trash": str(trash),
                  "manifests": {n: installed[n].to_json() for n in names}}
            self._begin(tx)
            try:
                for path in paths:
                    p = self.host(path)
                    if p.is_symlink() or p.exists():
                        (trash / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(p, trash / path.lstrip("/"))
                for n in names:
                    (self.installed_dir / f"{n}.json").unlink()
            except BaseException:
                self._rollback(tx)
                raise
            self._commit()
            # Its own directories and those left empty go too, unless another package declares them.
            own = {f.path for n in names for f in installed[n].files if f.type == "dir"}
            for d in sorted({str(Path(p).parent) for p in paths} | own, key=len, reverse=True):
                while d not in ("/", "") and d not in shared:
                    try:
                        self.host(d).rmdir()
                    except OSError:
                        break
                    d = str(Path(d).parent)
            return names

    # -- list and verify -----------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        rows = [{"package": m.name, "version": m.version, "release": m.release, "files": len(m.files),
                 "installed_bytes": m.installed_size, "depends": ", ".join(m.depends)}
                for m in self.installed().values()]
        return pd.DataFrame(rows, columns=["package", "version", "release", "files", "installed_bytes", "depends"])

    def verify(self) -> list[Problem]:
        """Every installed file re-hashed against its manifest."""
        problems = []
        for m in self.installed().values():
            for f in m.files:
                problems += [Problem(m.name, f.path, what) for what in self._check(f)]
        return problems

    def _check(self, f: FileEntry) -> list[str]:
        p = self.host(f.path)
        if not (p.is_symlink() or p.exists()):
            return ["missing"]
        if f.type == "link":
            if not p.is_symlink():
                return ["type: a link replaced by a file"]
            return [] if os.readlink(p) == f.target else [f"target: {os.readlink(p)} instead of {f.target}"]
        if f.type == "dir":
            return [] if p.is_dir() and not p.is_symlink() else ["type: not a directory"]
        if p.is_symlink() or not p.is_file():
            return ["type: not a regular file"]
        out = []
        if sha256_file(p) != f.sha256:
            out.append("modified: sha256 differs")
        mode = p.stat().st_mode & 0o7777
        if mode != f.mode:
            out.append(f"mode: {mode:o} instead of {f.mode:o}")
        return out


__all__ = ["ConflictError", "Problem", "Root"]
