"""Package management in a root: install (with dependencies), remove, list, verify.

The database is `<root>/var/lib/serpent/installed/<name>.json` (the manifests). Changes are
transactions: a journal listing every path the change touches is written before the root is
changed, and removed (the commit) after the database is updated. A failure or an interrupt
rolls back at once; a run killed outright leaves the journal, and the next command on the
root rolls it back first. Conflicts are found before anything is touched.

Nothing read is trusted: the database and the journal are checked like a manifest before any
remove, rollback or list acts on them; no package may ship a path in the installer's own state;
no change is made through a link that leads out of the root; a package file is installed from
the private copy that was hashed; the root keeps the highest index serial it accepted.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..build.lock import exclusive
from ..errors import ConflictError, DiskFullError, PackageError, TrustError
from ..files import leaving_link, within, write_atomic
from ..hashes import sha256_file
from .contents import check_path, check_paths, unpack
from .keys import ROOT_KEYS, PublicKey
from .package import FileEntry, Manifest, check_name, read_manifest
from .repo import Repository, trusted_keys

log = logging.getLogger(__name__)
DB = Path("var/lib/serpent")
STATE = "/" + DB.as_posix()  # no package may ship anything here


def _damaged(what: str, why: str) -> PackageError:
    return PackageError(f"{what} {why}: it is damaged or was planted; nothing was changed",
                        "look at the root: move that file away once you know where it came from")


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
        """The installed packages' manifests, each checked as a package's would be: its file named
        by its package, every path a clean one inside the root and outside the installer's state."""
        self._state_safe()
        if not self.installed_dir.is_dir():
            return {}
        out = {}
        for p in sorted(self.installed_dir.glob("*.json")):
            try:
                m = Manifest.from_json(p.read_text())
            except (PackageError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _damaged(f"the installed record {p}", f"is not a manifest ({exc})") from None
            if m.name != p.stem:
                raise _damaged(f"the installed record {p}", f"names the package {m.name!r}")
            for f in m.files:
                try:
                    check_path(m.name, f.path)
                except PackageError:
                    raise _damaged(f"the installed record {p}", f"names {f.path!r}, not a clean path in the root") from None
            out[m.name] = m
        return out

    def _state_safe(self) -> None:
        """The installer's own state lies in the root's real directories, not behind a link."""
        for rel in (DB / "installed", DB / "staging", DB / "transaction.json", DB / "serial.json", DB / "lock",
                    DB / "untrusted.json"):
            link = leaving_link(self.path, rel.as_posix(), any_link=True)
            if link:
                raise _damaged(f"{self.path}: the installer's state {STATE}", f"goes through the link {link}")

    def owners(self) -> dict[str, str]:
        """Path -> the package that owns it (directories excluded: those are shared)."""
        return {f.path: m.name for m in self.installed().values() for f in m.files if f.type != "dir"}

    def host(self, path: str) -> Path:
        """Where a package path lies in the root; refused when a link on the way leads out of it."""
        where = self.path / path.lstrip("/")
        if not within(self.path, where.parent):
            raise PackageError(f"{self.path}: {path} lies beyond {leaving_link(self.path, path.lstrip('/'))}, a link "
                               "out of the root; nothing was changed there", "remove that link from the root")
        return where

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One change at a time; a journal left by a killed run is rolled back first."""
        def busy(holder: dict) -> PackageError:
            return PackageError(f"{self.path}: another package operation is running on this root",
                                "wait for it to finish")
        self._state_safe()
        with exclusive(self.db / "lock", wait=False, purpose=None, busy=busy):
            self.recover()
            if self.staging.exists():  # a run killed before its journal was written: nothing of it is in the root
                shutil.rmtree(self.staging)
            yield

    # -- transactions --------------------------------------------------------------------------
    def recover(self) -> str | None:
        """Roll back an interrupted transaction; returns what was rolled back."""
        if not self.journal.is_file():
            return None
        tx = self._journal()
        self._rollback(tx)
        what = f"rolled back an interrupted {tx['op']} of {', '.join(tx['packages'])} (started {tx['started']})"
        log.warning("%s: %s", self.path, what)
        return what

    def _journal(self) -> dict:
        """The journal, checked as a manifest is: its packages names, its paths clean ones inside
        the root, its trash the installer's own."""
        try:
            tx = json.loads(self.journal.read_text())
            ok = (isinstance(tx, dict) and tx["op"] in ("install", "remove") and isinstance(tx["paths"], list)
                  and isinstance(tx["started"], str) and (tx["op"] == "remove" or isinstance(tx["dirs"], list))
                  and all(isinstance(m, int) for _, m in tx.get("modes", [])))
            for name in tx["packages"]:
                check_name(name, f"the journal {self.journal}")
            for path in tx["paths"] + tx.get("dirs", []) + [d for d, _ in tx.get("modes", [])]:
                check_path("the journal", path)
            if tx["op"] == "remove":
                ok = ok and tx["trash"] == str(self.staging / "removed") and all(
                    Manifest.from_json(text).name == name for name, text in tx["manifests"].items())
        except (PackageError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _damaged(f"the journal {self.journal}", f"is not one this installer wrote ({exc})") from None
        if not ok:
            raise _damaged(f"the journal {self.journal}", "is not one this installer wrote")
        return tx

    def _rollback(self, tx: dict) -> None:
        if tx["op"] == "install":
            for path in reversed(tx["paths"]):
                p = self.host(path)
                if p.is_symlink() or p.is_file():
                    p.unlink()
            for d, mode in tx.get("modes", []):  # directories that were there: their modes as they were
                if self.host(d).is_dir() and not self.host(d).is_symlink():
                    os.chmod(self.host(d), mode)
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
                trusted: dict[str, PublicKey] | None = None, insecure: bool = False,
                allow_downgrade: bool = False) -> list[str]:
        """Install `names` and their dependencies from `repo`, whose index must be signed by a key
        in `trusted` (default: the keys the root and the local key store hold) unless `insecure`,
        unexpired, and no older than the newest index this root accepted unless `allow_downgrade`;
        returns what was installed."""
        with self.locked():
            if not insecure:
                repo.verify_signature(trusted_keys(self.path) if trusted is None else trusted)
            self._check_serial(repo, allow_downgrade)
            installed = self.installed()
            plan = repo.closure(names, skip=set(installed))
            if not plan:
                return []
            try:
                self.staging.mkdir(parents=True, exist_ok=True)
                # Private copies, hashed as they are copied: a file swapped in the repository later is not read.
                archives = {n: repo.fetch(n, self.staging / "packages") for n in plan}
                manifests = {n: read_manifest(archives[n]) for n in plan}
                for n, m in manifests.items():
                    if m.name != n:
                        raise PackageError(f"{archives[n].name}: its manifest names the package {m.name!r}, the index "
                                           f"{n!r}; nothing was installed", "the repository is damaged or hostile")
                check_paths(self.path, manifests.values(), installed.values())
                modes = self._check_conflicts(manifests, installed)
                for name in plan:
                    self._unpack(archives[name], manifests[name], self.staging / name)
            except OSError as exc:  # the root is untouched so far: only the staging area goes
                shutil.rmtree(self.staging, ignore_errors=True)
                if exc.errno == errno.ENOSPC:
                    raise DiskFullError(f"no space left on the device of {self.path} while staging "
                                        f"{', '.join(plan)}; nothing was installed",
                                        f"free space there (df -h {self.path}) and install again") from None
                raise
            except BaseException:
                shutil.rmtree(self.staging, ignore_errors=True)
                raise
            paths, dirs, known = [], [], set()
            for m in manifests.values():
                for f in m.files:
                    dirs += self._missing_dirs(f.path, known, include_self=f.type == "dir")
                    if f.type != "dir":
                        paths.append(f.path)
            tx = {"op": "install", "packages": plan, "paths": paths, "dirs": dirs, "modes": modes}
            self._begin(tx)
            try:
                for d in dirs:
                    self.host(d).mkdir()
                    os.chmod(self.host(d), 0o755)  # as every root has them, whatever this process's umask
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
                if repo.signed_by is not None and repo.serial > self.serial():  # an unchecked index says nothing
                    write_atomic(self.db / "serial.json", json.dumps({"serial": repo.serial, "repository": str(repo.path)}))
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

    def serial(self) -> int:
        """The highest index serial this root accepted (0: none yet)."""
        path = self.db / "serial.json"
        try:
            return int(json.loads(path.read_text())["serial"]) if path.is_file() else 0
        except (ValueError, KeyError, TypeError) as exc:
            raise _damaged(str(path), f"is not what the installer wrote ({exc})") from None

    def _check_serial(self, repo: Repository, allow_downgrade: bool) -> None:
        now, had = int(time.time()), self.serial()
        if repo.expires and now > repo.expires:
            raise TrustError(f"the index of {repo.path} (serial {repo.serial}) expired on "
                             f"{time.strftime('%Y-%m-%d', time.gmtime(repo.expires))}",
                             "get a current repository; an expired index may be an old one served again")
        if repo.serial < had and not allow_downgrade:
            raise TrustError(f"the index of {repo.path} has serial {repo.serial}, older than {had}, the newest this "
                             f"root accepted", "get the current repository; to go back on purpose, pass "
                             "--allow-downgrade")

    def _check_conflicts(self, manifests: dict[str, Manifest], installed: dict[str, Manifest]) -> list[list]:
        """Refuse a path two packages claim, a file where a directory must be, and a directory
        mode other than the one a package already declares for it; returns the existing directories
        whose mode the install changes, with their modes now (the rollback restores them)."""
        owners = self.owners()
        declared = {f.path: (m.name, f.mode) for m in installed.values() for f in m.files if f.type == "dir"}
        changed = []
        for m in manifests.values():
            for f in m.files:
                p = self.host(f.path)
                if f.type == "dir":
                    if (p.exists() or p.is_symlink()) and not p.is_dir():
                        raise ConflictError(f"{m.name} needs the directory {f.path}, but a file is there",
                                            "remove that file, or fix the package")
                    other = declared.get(f.path)
                    if other and other[1] != f.mode:
                        raise ConflictError(f"{m.name} declares {f.path} mode {f.mode:o}, {other[0]} mode {other[1]:o}",
                                            "a directory has one mode: fix one of the packages; nothing was installed")
                    declared[f.path] = (m.name, f.mode)
                    if p.is_dir() and stat.S_IMODE(p.stat().st_mode) != f.mode:
                        changed.append([f.path, stat.S_IMODE(p.stat().st_mode)])
                    continue
                if f.path in owners:
                    raise ConflictError(f"{m.name} and {owners[f.path]} both claim {f.path}",
                                        f"remove {owners[f.path]} first, or fix one of the packages; nothing was installed")
                if p.exists() or p.is_symlink():
                    raise ConflictError(f"{m.name}: {f.path} already exists in {self.path} and no package owns it",
                                        "move it away first; nothing was installed")
                owners[f.path] = m.name
        return changed

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

    # -- keys ----------------------------------------------------------------------------------
    def untrust(self, kid: str) -> Path:
        """Stop trusting a key in this root: its /etc/serpent/keys/<id>.pub goes, and the root
        remembers that it went on purpose, so `verify` does not call it missing (the last step of
        a key's rotation, or the first after a leak)."""
        check_name(kid, "a key id")
        path = f"/{ROOT_KEYS.as_posix()}/{kid}.pub"
        with self.locked():
            removed = self.untrusted()
            if kid not in removed and not self.host(path).is_file():
                raise PackageError(f"{self.path} holds no key {kid} ({path})", "see the root's /etc/serpent/keys")
            write_atomic(self.db / "untrusted.json", json.dumps(sorted(set(removed) | {kid})))
            self.host(path).unlink(missing_ok=True)
        return self.host(path)

    def untrusted(self) -> list[str]:
        """The keys taken out of this root on purpose (see `untrust`)."""
        path = self.db / "untrusted.json"
        try:
            kids = json.loads(path.read_text()) if path.is_file() else []
            return [check_name(k, str(path)) for k in kids]
        except (ValueError, TypeError) as exc:
            raise _damaged(str(path), f"is not what the installer wrote ({exc})") from None

    # -- list and verify -----------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        rows = [{"package": m.name, "version": m.version, "release": m.release, "files": len(m.files),
                 "installed_bytes": m.installed_size, "depends": ", ".join(m.depends)}
                for m in self.installed().values()]
        return pd.DataFrame(rows, columns=["package", "version", "release", "files", "installed_bytes", "depends"])

    def verify(self) -> list[Problem]:
        """Every installed file re-hashed against its manifest (a key taken out on purpose aside)."""
        gone = {f"/{ROOT_KEYS.as_posix()}/{kid}.pub" for kid in self.untrusted()}
        problems = []
        for m in self.installed().values():
            for f in m.files:
                if f.path in gone and not self.host(f.path).exists():
                    continue
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
            if not p.is_dir() or p.is_symlink():
                return ["type: not a directory"]
            mode = stat.S_IMODE(p.stat().st_mode)
            return [] if mode == f.mode else [f"mode: {mode:o} instead of {f.mode:o}"]
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
