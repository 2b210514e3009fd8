"""The phases of one recipe in one stage: fetch, extract, patch on the host; configure,
build, install in the sandbox; then measure and merge. Every phase yields a PhaseRecord.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import shutil
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..elf import is_elf
from ..errors import BuildError, ContainmentError, DiskFullError, Interrupted, SerpentError
from ..files import copy_tree, leaving_link, walk, within, write_atomic
from ..rows import INTERRUPTED, PhaseRecord, SizeRecord, Step, Timer, timed
from . import progress
from .graph import Slots
from .recipes import Recipe
from .sandbox import Sandbox
from .sources import SourceStore, apply_patches
from .styles import PHASES, commands

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What every package build of one stage shares."""

    stage: str
    work: Path                 # <work>/<stage>: build trees and DESTDIRs live here
    install_root: Path         # each package's DESTDIR is merged here after install
    store: SourceStore
    sandbox: Sandbox
    logs: Path                 # <run>/logs/<stage>
    env: dict[str, str] = field(default_factory=dict)
    # Where the sandbox sees a host path (a chroot binds the build trees elsewhere).
    inside: Callable[[Path], str] = str
    # Packages whose stage build says `on_host: true` run here instead (stage3's intermediate musl),
    # or `on_host: [<compiler>, ...]` naming the stage's final `compiler` (mini's tcc cannot build Linux).
    host_sandbox: Sandbox | None = None
    compiler: str = ""
    host_env: dict[str, str] = field(default_factory=dict)
    jobs: int = os.cpu_count() or 1
    keep_build_trees: bool = False
    # Packages whose finished tree stays, stamped `installed` (the LLVM fixpoint compares its objects).
    keep_trees: frozenset[str] = frozenset()
    on_record: Callable[[PhaseRecord], None] = lambda record: None
    # Called with the finished DESTDIR before it is merged and removed (the build cache keeps it).
    on_installed: Callable[[Path, "SizeRecord"], None] = lambda destdir, size: None
    # Builds running at once share the cores (graph.Slots), and merge in the stage's order
    # (graph.MergeOrder.turn); alone, a build has every job and merges when it is done.
    slots: Slots | None = None
    # What a build in stage 0 sees of the work directory besides its own tree (None: all of it).
    sees: list[Path] | None = None
    merge_turn: Callable[[str], ContextManager] = lambda name: nullcontext()
    # False on a cluster's worker: the DESTDIR goes to on_installed alone (it is sent back), no root.
    merges: bool = True


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(text: str, env: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced from `env` (unknown names become empty, as in sh)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), text)


def tree_size(path: Path, count_elf: bool = True) -> tuple[int, int, int]:
    """(bytes, regular files, ELF files) under `path`, links not followed; ELF files are only
    counted (each file opened) when asked."""
    files = [e for e in walk(path) if e.is_file]
    elves = sum(is_elf(e.path) for e in files) if count_elf else 0
    return sum(e.st.st_size for e in files), len(files), elves


def merge_tree(src: Path, dest: Path) -> None:
    """Copy `src` over the root `dest`, keeping links as links; later packages win on conflicts.
    The root's own links inside it are followed (its /lib -> usr/lib merges a package's lib/), but
    nothing is written through a link that leads out of it: that is refused, naming the link."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in walk(src):
        parent = entry.rel.rpartition("/")[0]
        if not within(dest, dest / parent):
            raise ContainmentError(f"{src}: {entry.rel} would be written through {leaving_link(dest, parent)}, "
                                   f"a link out of {dest}",
                                   "a package (this one or one merged before it) installed that link: fix its recipe")
        target = dest / entry.rel
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target.is_dir() and not target.is_symlink() and not entry.is_link:
            raise ContainmentError(f"{src}: {entry.rel} is a file, but {dest / entry.rel} is a directory of the root",
                                   "a package may not put a file where another one's directory is: fix its recipe")
        if target.is_symlink() or target.exists():
            target.unlink() if not target.is_dir() or target.is_symlink() else shutil.rmtree(target)
        if entry.is_link:
            os.symlink(os.readlink(entry.path), target)
        else:
            shutil.copy2(entry.path, target)


# Where `$CC` resolves, links followed (stage 3's /usr/bin/clang is a link to /serpent's until
# LLVM is built), and its version line (tcc has no --version: its -v says it).
COMPILER_PROBE = ('set -- ${CC:-clang}; p=$(command -v "$1") || { echo "no $1 on PATH"; exit 0; }; '
                  'readlink -f "$p" 2>/dev/null || echo "$p"; '
                  '"$1" --version 2>/dev/null | grep -m1 . || "$1" -v 2>&1 | head -n 1')


class PackageBuild:
    """One recipe built in one stage."""

    def __init__(self, recipe: Recipe, ctx: StageContext, key: str = "", paced_like: str = "") -> None:
        """`paced_like`: the package whose earlier builds give the time left when this one has
        none of its own (the fixpoint's rebuild of LLVM: LLVM's)."""
        self.recipe, self.ctx, self.key, self.paced_like = recipe, ctx, key, paced_like
        self.spec = recipe.build_for(ctx.stage)
        self.root = ctx.work / "build" / recipe.name
        self.src = self.root / "src"
        self.objdir = self.root / "build"
        self.destdir = self.root / "dest"
        self.on_host = self.spec.built_on_host(ctx.compiler) and ctx.host_sandbox is not None
        self.records: list[PhaseRecord] = []
        self.cached_from: str | None = None  # set when the package comes from the build cache

    def log_path(self, phase: str) -> Path:
        return self.ctx.logs / self.recipe.name / f"{phase}.log"

    def _record(self, record: PhaseRecord) -> PhaseRecord:
        if self.cached_from is not None:
            record = replace(record, origin="cached", from_run=self.cached_from)
        self.records.append(record)
        self.ctx.on_record(record)
        log.info("%s %-14s %-9s %7.1fs %s", self.ctx.stage, self.recipe.name, record.phase, record.wall_s,
                 "ok" if record.exit_code == 0 else f"FAILED (exit {record.exit_code})")
        return record

    def step(self, phase: str) -> Step:
        return Step(self.ctx.stage, self.recipe.name, self.recipe.version, phase)

    @contextmanager
    def host_phase(self, phase: str) -> Iterator[None]:
        """Time a phase done in this process (fetch, extract, patch, merge); its log says why it failed."""
        logfile = self.log_path(phase)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with timed(self._record, self.step(phase), str(logfile)):
            try:
                yield
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    logfile.write_text(traceback.format_exc())
                    raise
                failure = DiskFullError(f"{self.ctx.stage}: {self.recipe.name}: no space left on the device while "
                                        f"{phase} wrote {exc.filename or self.ctx.work}",
                                        f"free space on the file system of {self.ctx.work} (df -h {self.ctx.work}) "
                                        "or give the run another --work-dir; nothing finished was lost")
                logfile.write_text(str(failure) + "\n")
                raise failure from None
            except SerpentError as exc:
                logfile.write_text(str(exc) + "\n")
                raise
            except BaseException:  # anything else (a bug, ^C): failed too, and the log says where
                logfile.write_text(traceback.format_exc())
                raise

    def cores(self, want: int) -> ContextManager[int]:
        """Hold up to `want` of the stage's cores while a command runs; yields how many."""
        return self.ctx.slots.take(want) if self.ctx.slots is not None else nullcontext(self.ctx.jobs)

    def sees(self) -> list[Path]:
        """What a build in stage 0 sees of the work directory: `ctx.sees` (stage 1, the toolchain),
        else all of it."""
        return list(self.ctx.sees) if self.ctx.sees is not None else [self.ctx.work.parent]

    def host_side(self) -> Sandbox:
        """Where host-side steps (patch, prepare) run: stage 0 in a real build, writing only this tree."""
        return replace(self.ctx.host_sandbox or self.ctx.sandbox, writable=[self.root], visible=self.sees())

    def compiler(self) -> str:
        """Which compiler this build's `$CC` is (clang when unset, as stage 1's recipes call it),
        asked where the build runs, before the package's own files are there: its version line,
        its path with links followed (the work directory as `<work>`: the same build elsewhere
        says the same), and whose it is."""
        sandbox = self.ctx.host_sandbox if self.on_host else self.ctx.sandbox
        if sandbox.root is None:
            sandbox = replace(sandbox, visible=self.sees())
        log = self.log_path("compiler")
        log.unlink(missing_ok=True)
        sandbox.run(COMPILER_PROBE, cwd="/", log=log, step=self.step("compiler"), env=self.environment())
        said = [line.strip() for line in log.read_text(errors="replace").splitlines()[1:] if line.strip()]
        if len(said) < 2:
            return "unknown: " + (" ".join(said) or "the probe printed nothing")
        path, version = said[0], said[1]
        if sandbox.root is not None:
            whose = "stage 2's, under /serpent" if path.startswith("/serpent/") else f"the {self.ctx.stage} root's own"
        elif path.startswith(str(self.ctx.work.parent / "stage1")):
            whose = "stage 1's wrapper of stage 0's clang"
        else:
            whose = "stage 0's (the seed)" if sandbox.seed else "the host's"
        return f"{version} ({path.replace(str(self.ctx.work.parent), '<work>')}: {whose})"

    def where(self, path: Path) -> str:
        return str(path) if self.on_host else self.ctx.inside(path)

    def environment(self) -> dict[str, str]:
        """Stage variables, then the recipe's, whose `$VARS` expand against those before them."""
        env = {"SRC": self.where(self.src), "BUILDDIR": self.where(self.objdir), "DESTDIR": self.where(self.destdir),
               "PREFIX": "/usr",
               "JOBS": str(self.ctx.jobs), **(self.ctx.host_env if self.on_host else self.ctx.env)}
        for key, value in self.spec.env.items():
            env[key] = expand(value, env)
        return env

    # -- resuming --------------------------------------------------------------------------
    # A build tree outlives a failed or interrupted run. Its stamp names the cache key it was made
    # for and the phases done; a run with the same key skips those and goes on (make and ninja
    # are incremental); any other key starts afresh.
    RESUMABLE = ("extract", "patch", "prepare", "configure")

    @property
    def stamp(self) -> Path:
        return self.root / "resume.json"

    def phases_done(self) -> list[str]:
        """The phases an earlier run did in this tree for the same key ([] when none or no key)."""
        if not self.key or not self.stamp.is_file():
            return []
        try:
            data = json.loads(self.stamp.read_text())
        except ValueError:
            return []
        return list(data.get("done", [])) if data.get("key") == self.key else []

    def mark_done(self, phase: str) -> None:
        if not self.key:
            return
        done = self.phases_done() + [phase]
        write_atomic(self.stamp, json.dumps({"key": self.key, "done": done}) + "\n")

    def run(self) -> tuple[list[PhaseRecord], SizeRecord]:
        r = self.recipe
        done = self.phases_done()
        with self.host_phase("fetch"):
            fetched = [self.ctx.store.fetch(s) for s in r.sources]
        if done:
            with self.host_phase("resume"):
                self.log_path("resume").write_text(
                    f"{self.root}: resumed; done by an earlier run with the same key {self.key}: {', '.join(done)}\n")
                log.info("%s %s: resuming its build tree (%s done before)", self.ctx.stage, r.name, ", ".join(done))
        else:
            with self.host_phase("extract"):
                shutil.rmtree(self.root, ignore_errors=True)
                if r.source_dir:  # the project's own sources
                    copy_tree(r.source_dir, self.src)
                for i, (source, got) in enumerate(zip(r.sources, fetched)):
                    tree = self.ctx.store.unpacked(got, source)
                    copy_tree(tree, self.src if i == 0 else self.root / f"src{i}")
            self.mark_done("extract")
        patches = r.patches_for(self.ctx.stage)
        if patches and "patch" not in done:
            with self.host_phase("patch"):
                log_file = self.log_path("patch")
                log_file.unlink(missing_ok=True)
                apply_patches(patches, self.src, self.host_side(), log_file)
            self.mark_done("patch")
        if r.prepare.strip() and "prepare" not in done:  # host-side, like patching: the chroot may lack the tools
            host = self.host_side()
            env = {**(self.ctx.host_env if self.ctx.host_sandbox else self.ctx.env), "SRC": str(self.src)}
            with self.cores(1):
                record = self._record(host.run(f"set -e\n{r.prepare.strip()}", cwd=self.src,
                                               log=self.log_path("prepare"), step=self.step("prepare"), env=env))
            if record.exit_code != 0:
                raise BuildError(self.ctx.stage, r.name, "prepare", record.exit_code, Path(record.log))
            self.mark_done("prepare")
        shutil.rmtree(self.destdir, ignore_errors=True)  # an earlier attempt's partial install
        self.destdir.mkdir(parents=True)
        self.objdir.mkdir(parents=True, exist_ok=True)
        in_tree = self.spec.in_tree or self.spec.style == "make"
        cwd = self.where(self.src / self.spec.subdir if in_tree else self.objdir)
        env = self.environment()
        sandbox = self.ctx.host_sandbox if self.on_host else self.ctx.sandbox
        assert sandbox is not None
        if sandbox.root is None:  # on the host, a build may write its own tree and nothing else
            sandbox = replace(sandbox, writable=[self.root], visible=self.sees())
        for phase, command in commands(self.spec).items():
            if command is None or phase in done:
                continue
            logfile = self.log_path(phase)
            # Earlier builds of this package, else of the one it is paced like: the first that has any.
            likes = ([r.name] + ([self.paced_like] if self.paced_like else [])) if phase == "build" else []
            paces = next(filter(None, (progress.earlier_paces(self.ctx.stage, n, phase) for n in likes)), [])
            steps = next(filter(None, (progress.earlier_steps(self.ctx.stage, n, phase) for n in likes)), {})
            clock = Timer(resource.RUSAGE_CHILDREN)
            try:
                with self.cores(self.ctx.jobs if phase in ("build", "check") else 1) as jobs, \
                        progress.watch(logfile, f"{self.ctx.stage} {r.name} {phase}", paces, steps=steps,
                                       tree_log=self.objdir / ".ninja_log", jobs=jobs):
                    record = self._record(sandbox.run(command, cwd=cwd, log=logfile, step=self.step(phase),
                                                      env={**env, "JOBS": str(jobs)}))
            except KeyboardInterrupt as exc:  # ^C, SIGTERM: the sandbox stopped the build; its cost is kept too
                self._record(exc.record if isinstance(exc, Interrupted) else
                             clock.record(self.step(phase), INTERRUPTED, str(logfile)))
                raise
            if record.exit_code != 0:
                raise BuildError(self.ctx.stage, r.name, phase, record.exit_code, Path(record.log))
            if phase in self.RESUMABLE:
                self.mark_done(phase)
            ninja_log = self.objdir / ".ninja_log"
            if phase == "build" and ninja_log.is_file():  # every step's start and end: where the time went
                shutil.copy2(ninja_log, self.log_path("ninja_log"))
        with self.host_phase("measure"):
            build_bytes = tree_size(self.root, count_elf=False)[0]
            installed, files, elves = tree_size(self.destdir)
        size = SizeRecord(self.ctx.stage, r.name, r.version, sum(f.size for f in fetched), build_bytes,
                          installed, files, elves)
        with self.ctx.merge_turn(r.name), self.host_phase("merge" if self.ctx.merges else "pack"):
            self.ctx.on_installed(self.destdir, size)  # the wait for its turn (above) is not merging
            if self.ctx.merges:
                merge_tree(self.destdir, self.ctx.install_root)
            if r.name in self.ctx.keep_trees:
                self.mark_done("installed")
            elif not self.ctx.keep_build_trees:
                shutil.rmtree(self.root, ignore_errors=True)
        return self.records, size

    def restore(self, cached_destdir: Path, from_run: str = "") -> list[PhaseRecord]:
        """Install a cached build instead of building: one `cached` phase, no build work, whose
        record names the run that built it."""
        self.cached_from = from_run
        if not (self.recipe.name in self.ctx.keep_trees and "installed" in self.phases_done()):
            shutil.rmtree(self.root, ignore_errors=True)  # a tree an earlier failed attempt left
        return self.merge(cached_destdir, "cached")

    def merge(self, destdir: Path, phase: str = "merge") -> list[PhaseRecord]:
        """Merge a finished DESTDIR (one another machine built) into the stage's root, in its turn."""
        with self.ctx.merge_turn(self.recipe.name), self.host_phase(phase):
            merge_tree(destdir, self.ctx.install_root)
        return self.records


def build_package(recipe: Recipe, ctx: StageContext, key: str = "") -> tuple[list[PhaseRecord], SizeRecord]:
    """Build `recipe` in the stage described by `ctx`; raises BuildError on a failing phase. With
    the build's cache `key`, a tree an earlier run left for the same key is resumed."""
    return PackageBuild(recipe, ctx, key).run()


__all__ = ["PHASES", "PackageBuild", "StageContext", "build_package", "merge_tree", "tree_size"]
