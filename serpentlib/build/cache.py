"""The build cache, an action cache: each package's installed tree, kept under a key that hashes
everything its build sees: the recipe (its file, patches, the sources' sha256s), the exact commands,
environment and sandbox, and the *content digests* of what it builds on: the earlier stages' trees
and the outputs of the packages before it. Not their keys: a package rebuilt to the same bytes
leaves everything built on it cached (early cutoff), and a build whose inputs are the same in two
stages (stage 2's musl and stage 3's intermediate one) is made once. One cache serves every stage:
`<work>/cache/builds`.

Entries are written to `<key>.partial` and renamed into place, so an interrupted run never
leaves an entry that looks whole. A run resumes by finding its finished packages here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import SerpentError
from ..files import copy_tree, write_atomic
from ..hashes import digest, tree_digest
from ..rows import SizeRecord
from .recipes import Recipe
from .styles import commands

log = logging.getLogger(__name__)


def recipe_inputs(recipe: Recipe, stage: str) -> dict:
    """Everything of the recipe that shapes a build in `stage`, as plain data: not its other
    stages' overrides nor its checks, so editing how stage 3 builds LLVM keeps stage 2's build.
    Not the stage's name, nor `on_host` (where the build runs is in its key apart): the same
    build in two stages is one."""
    spec = recipe.build_for(stage)
    build = {k: v for k, v in asdict(spec).items() if k != "on_host"}
    return {"name": recipe.name, "version": recipe.version, "release": recipe.release,
            "sources": [[s.sha256, list(s.extract), s.strip] for s in recipe.sources],
            "patches": {p.name: p.read_text(errors="replace") for p in recipe.patches_for(stage)},
            "prepare": recipe.prepare, "depends": list(recipe.depends), "build": build,
            "commands": commands(spec),
            "source_dir": tree_digest(recipe.source_dir) if recipe.source_dir else None}


class BuildCache:
    """`<root>/<key>/dest` (the package's DESTDIR), `<root>/<key>/size.json` and the build's own
    `build.log` (what stage 4 reads a flag from where the files cannot show it)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def key(self, recipe: Recipe, stage: str, env: dict[str, str], sees: dict[str, str], runs_in: dict | None = None) -> str:
        """`sees`: the content digest of each thing the build sees ({"stage1": ..., "musl": ...});
        `runs_in`: its sandbox (kind, PATH, shell)."""
        return digest(recipe_inputs(recipe, stage), env, runs_in or {}, sorted(sees.items()))

    def get(self, key: str) -> tuple[Path, SizeRecord] | None:
        """The entry of `key`, its tree checked against the digest taken when it was filled; a
        damaged one (or one from before entries had a digest) is removed, with a warning naming
        it, and the package is built again."""
        entry = self.root / key
        if not (entry / "size.json").is_file():
            return None
        try:
            size = SizeRecord(**json.loads((entry / "size.json").read_text()))
        except (ValueError, TypeError) as exc:
            log.warning("build cache: the entry %s has a damaged size.json (%s): building it again", entry, exc)
            return None
        recorded = self._meta(key).get("digest")
        actual = tree_digest(entry / "dest") if (entry / "dest").is_dir() else None
        problem = ("was filled before cache entries recorded their digest" if recorded is None else
                   "has lost its tree" if actual is None else
                   "has changed since it was filled (its files no longer hash as recorded)" if actual != recorded else "")
        if problem:  # left as it is: the build that fills the key again replaces it whole
            log.warning("build cache: the entry of %s (%s) %s: building it again", size.package, entry, problem)
            return None
        return entry / "dest", size

    def put(self, key: str, destdir: Path, size: SizeRecord, run_id: str = "", build_log: Path | None = None) -> str:
        """Keep a finished build under `key`, with the id of the run that built it and its build log;
        returns the digest of its tree."""
        entry, partial = self.root / key, self.root / f"{key}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        copy_tree(destdir, partial / "dest")
        (partial / "size.json").write_text(json.dumps(asdict(size)))
        made = tree_digest(partial / "dest")
        (partial / "built-by.json").write_text(json.dumps({"run_id": run_id, "digest": made}))
        if build_log is not None and build_log.is_file():
            shutil.copy2(build_log, partial / "build.log")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(partial, entry)
        return made

    @staticmethod
    def log_in(entry: Path) -> Path | None:
        return entry / "build.log" if (entry / "build.log").is_file() else None

    def build_log(self, key: str) -> Path | None:
        """The log of the build phase that filled the entry (None for entries older than that record)."""
        return self.log_in(self.root / key)

    def _meta(self, key: str) -> dict:
        path = self.root / key / "built-by.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            return {}

    def output(self, key: str) -> str:
        """The digest of the entry's tree, as recorded when it was filled (get() checks it)."""
        return self._meta(key).get("digest", "")

    def built_by(self, key: str) -> str:
        """The id of the run whose build filled the entry ("" for entries older than that record)."""
        return self._meta(key).get("run_id", "")

    def put_checks(self, key: str, checks: list[dict], root_digest: str, files: list[Path] = ()) -> None:
        """Keep a stage's checks, with the digest of the tree they were made on, and `files` the
        records name (a listing of what a check compared)."""
        self.root.mkdir(parents=True, exist_ok=True)
        kept = {p.name: p.read_text() for p in files}
        write_atomic(self.root / f"checks-{key}.json",
                     json.dumps({"time": time.time(), "root": root_digest, "checks": checks, "files": kept}))

    def get_checks(self, key: str, root_digest: str, files: Path | None = None) -> list[dict] | None:
        """The checks kept for `key`, only when made on a tree of `root_digest`: replayed onto
        any other tree they would say what they did not see. The files kept with them are
        written into the folder `files`."""
        path = self.root / f"checks-{key}.json"
        if not path.is_file():
            return None
        kept = json.loads(path.read_text())
        if kept.get("root") != root_digest:
            log.info("%s: kept checks were made on another tree than this one: checking again", path.name)
            return None
        for name, text in (kept.get("files") or {}).items() if files is not None else ():
            write_atomic(Path(files) / Path(name).name, text)
        return kept["checks"]


# A finished stage: `<work>/<stage>/.complete` holds its key, its inputs (the key less the work
# directory's path), its run, each package's key and the digest of the stage's tree: later
# stages' builds see that tree, and their keys hash its digest.
COMPLETE = ".complete"
# What a stage's tree digest leaves out: its build trees, the checks' scratch, the marker, and
# the record of each package's compiler (written after the digest is taken).
COMPILERS = "compilers.json"
NOT_MADE = ("build", "checks", COMPLETE, COMPILERS)
CACHE = "builds"  # <work>/cache/builds: the one cache of every stage


def stage_marker(stage_dir: Path) -> dict:
    """What a finished stage recorded: its key, its run, each package's cache key."""
    marker = stage_dir / COMPLETE
    if not marker.is_file():
        raise SerpentError(f"{stage_dir.name} has not completed in {stage_dir.parent}",
                           f"run it first with the same --work-dir: serpent run --stage {stage_dir.name[-1]}")
    return json.loads(marker.read_text())


def stage_key(stage_dir: Path) -> str:
    """The cache key of a finished stage, or a clear error when it did not finish."""
    return stage_marker(stage_dir)["key"]


def mark_complete(stage_dir: Path, marker: dict) -> None:
    write_atomic(stage_dir / COMPLETE, json.dumps(marker) + "\n")
