"""The source store: files kept by sha256, fetched from mirrors, upstream or Debian's archive.

Every use re-verifies the file; a mismatch is refused and the bad copy removed. Extraction
(serpentlib.archive) keeps every member inside its tree, and only ever extracts a verified
file into a fresh directory of its own that is renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ChecksumError, PatchError, SourceError
from ..files import write_atomic
from ..hashes import sha256_file, tree_digest
from ..paths import CACHE_HOME
from .archive import extract
from .lock import exclusive
from .recipes import Source
from ..rows import Step
from .sandbox import Sandbox
from .seed import APT_AS_ROOT, Seed, capture

log = logging.getLogger(__name__)

DEFAULT_STORE = CACHE_HOME / "sources"


@dataclass(frozen=True)
class Fetched:
    """Where a verified source file is, and where it came from this time."""

    path: Path
    sha256: str
    origin: str  # store | mirror:<where> | upstream | debian:<pkg>=<version>
    size: int


class SourceStore:
    """Content-addressed files: `<root>/<sha256[:2]>/<sha256>`."""

    def __init__(self, root: Path | None = None, mirrors: Sequence[str] = (),
                 upstream: bool = True, debian: bool = True, timeout: float = 20.0, seed: Seed | None = None) -> None:
        self.root = Path(root or os.environ.get("SERPENT_STORE") or DEFAULT_STORE)
        self.seed = seed  # Debian's source archive is read through stage 0's apt, never the host's
        self.mirrors = list(mirrors)
        self.upstream = upstream
        self.debian = debian
        self.timeout = timeout

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def unpacked(self, fetched: Fetched, source: Source) -> Path:
        """The source's tree, extracted once per (file, subset) and kept in the store.

        Callers copy it (builds write into their trees). One process at a time extracts a tree
        (a lock per tree), into a folder of its own renamed into place when complete; the tree's
        hash is recorded then and checked on every use, and a tree changed since is extracted
        again, with a warning.
        """
        key = hashlib.sha256(f"{source.sha256}:{source.strip}:{','.join(source.extract)}".encode()).hexdigest()[:32]
        trees = self.root / "trees"
        tree, record = trees / key, trees / f"{key}.sha256"
        with exclusive(trees / f"{key}.lock"):
            if tree.is_dir():
                recorded = record.read_text().strip() if record.is_file() else None
                if recorded == tree_digest(tree):
                    return tree
                log.warning("%s: the store's extracted tree %s %s; extracting it again", source.filename, tree,
                            "changed since it was extracted" if recorded else "has no recorded hash")
            record.unlink(missing_ok=True)
            extract(fetched.path, tree, source.extract, source.strip)
            write_atomic(record, tree_digest(tree) + "\n")
        return tree

    # -- verification -------------------------------------------------------------------
    def verify(self, path: Path, source: Source, origin: str) -> None:
        """Raise ChecksumError (after removing `path`) unless its sha256 is the recipe's."""
        actual = sha256_file(path)
        if actual != source.sha256:
            path.unlink(missing_ok=True)
            raise ChecksumError(
                f"{source.filename} from {origin} is not the file the recipe names: "
                f"expected sha256 {source.sha256}, got {actual}; the bad copy was removed",
                "fetch again to get a good copy; if upstream changed the file, check it and update the recipe's sha256")

    # -- fetching -----------------------------------------------------------------------
    def fetch(self, source: Source) -> Fetched:
        """Return a verified copy of `source`, trying the store, mirrors, upstream, Debian."""
        dest = self.path_for(source.sha256)
        if dest.exists():
            try:
                self.verify(dest, source, f"the store ({dest})")
                return Fetched(dest, source.sha256, "store", dest.stat().st_size)
            except ChecksumError as exc:
                log.warning("%s", exc.message)
        tried: list[str] = []
        for origin, getter in self._candidates(source):
            try:
                got = getter()
            except SourceError as exc:
                tried.append(f"{origin}: {exc.message}")
                continue
            if got is None:
                tried.append(f"{origin}: not there")
                continue
            try:
                self._adopt(got, dest, source, origin)
            except ChecksumError as exc:
                tried.append(f"{origin}: {exc.message}")
                log.warning("%s", exc.message)
                continue
            return Fetched(dest, source.sha256, origin, dest.stat().st_size)
        raise SourceError(
            f"{source.filename} (sha256 {source.sha256}) could not be had:\n    " + "\n    ".join(tried),
            f"put the file in a mirror directory listed in the profile's `mirrors`, or check the URL; "
            f"store: {self.root}")

    def _candidates(self, source: Source):
        for mirror in self.mirrors:
            yield f"mirror {mirror}", lambda m=mirror: self._from_mirror(m, source)
        if self.upstream and not source.repacked and source.url:
            yield f"upstream {source.url}", lambda: self._download(source.url)
        if self.debian and source.debian:
            yield f"debian source package {source.debian}", lambda: self._from_debian(source)

    def _adopt(self, got: Path, dest: Path, source: Source, origin: str) -> None:
        """Verify a fetched file, then move (or copy) it into the store atomically."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".part-{os.getpid()}-{threading.get_ident()}")  # builds fetch at once
        try:
            if got.name.startswith("serpent-dl-"):  # our own download: move, don't copy
                shutil.move(got, tmp)
            else:
                shutil.copyfile(got, tmp)
            self.verify(tmp, source, origin if not origin.startswith("mirror") else f"{origin} ({got})")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _from_mirror(self, mirror: str, source: Source) -> Path | None:
        if "://" in mirror:
            return self._download(mirror.rstrip("/") + "/" + source.filename)
        base = Path(mirror)
        for candidate in (base / source.filename, base / source.sha256):
            if candidate.is_file():
                return candidate
        return None

    def _download(self, url: str) -> Path | None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="serpent-dl-", dir=self.root)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            Path(name).unlink(missing_ok=True)
            raise SourceError(f"download failed: {getattr(exc, 'reason', exc)}") from None
        return Path(name)

    def _from_debian(self, source: Source) -> Path | None:
        """`apt-get source --download-only`, in stage 0, of the version of the package that ships this sha256."""
        assert source.debian
        if self.seed is None:
            raise SourceError("Debian's source archive is read through stage 0, and this store has no seed",
                              "fetch through `serpent fetch --profile NAME`, which makes the seed first")
        package = source.debian.split("=", 1)[0]
        version = self.debian_version_with(package, source.sha256)
        if version is None:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="serpent-apt-", dir=self.root))
        try:
            code, said = capture(self.seed, ["apt-get", *APT_AS_ROOT, "source", "--download-only", f"{package}={version}"],
                                 workdir / "apt.log", apt=True, cwd=workdir)
            # The file may have come although another of the package's did not (a Debian revision
            # gone from the archive): it is taken by its sha256 all the same.
            for f in workdir.iterdir():
                if f.is_file() and f.name != "apt.log" and f.stat().st_size > 0 and sha256_file(f) == source.sha256:
                    kept = self.root / f"serpent-dl-{source.sha256}"
                    shutil.move(f, kept)
                    return kept
            if code != 0:
                raise SourceError(f"apt-get source {package}={version} failed in stage 0: {said.strip()[-300:]}")
            return None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def debian_version_with(self, package: str, sha256: str) -> str | None:
        """The version of Debian source package `package` whose files include `sha256`, from stage 0's
        index; the index is read anew once when it does not name the file."""
        assert self.seed is not None
        for attempt in range(2):
            if attempt or self._index_stale:
                self.refresh_index()
            logfile = self.root / f"serpent-showsrc-{os.getpid()}.log"
            try:
                code, said = capture(self.seed, ["apt-cache", "showsrc", package], logfile, apt=True, cwd=self.root)
            finally:
                logfile.unlink(missing_ok=True)
            for stanza in said.split("\n\n") if code == 0 else []:
                version = re.search(r"^Version: (\S+)", stanza, re.MULTILINE)
                if version and re.search(rf"^ {sha256} ", stanza, re.MULTILINE):
                    return version.group(1)
            if self._index_fresh:
                break
        return None

    _index_stale = False   # set to read Debian's index anew before the first lookup (fetch --check)
    _index_fresh = False

    def refresh_index(self) -> None:
        """Read Debian's package and source indexes anew into the seed's apt lists (not the seed itself)."""
        assert self.seed is not None
        if self._index_fresh:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        logfile = self.root / f"serpent-update-{os.getpid()}.log"
        try:
            code, said = capture(self.seed, ["apt-get", *APT_AS_ROOT, "update", "-q"], logfile, apt=True, cwd=self.root)
        finally:
            logfile.unlink(missing_ok=True)
        if code != 0:
            raise SourceError(f"apt-get update failed in stage 0: {said.strip()[-300:]}")
        self._index_fresh = True


def apply_patches(patches: Iterable[Path], tree: Path, sandbox: Sandbox, log: Path) -> list[str]:
    """Apply each patch with `patch -p1` in `sandbox` (stage 0 in a build), writing only `tree`;
    return their names. A failing patch raises PatchError with patch's own words."""
    patches = list(patches)
    box = replace(sandbox, writable=[tree], visible=sorted({p.parent for p in patches}))
    applied = []
    for patch in patches:
        start = log.stat().st_size if log.exists() else 0
        rec = box.run(f"patch -p1 --batch --forward -i {shlex.quote(str(patch))}", cwd=tree, log=log, step=Step("", phase="patch"))
        if rec.exit_code != 0:
            with open(log, "rb") as fh:
                fh.seek(start)
                said = fh.read().decode(errors="replace").split("\n", 1)[-1]
            raise PatchError(f"{patch.name} does not apply to {tree.name}:\n{said.strip()[-1500:]}",
                             "refresh the patch against this version of the source, or drop it")
        applied.append(patch.name)
    return applied
