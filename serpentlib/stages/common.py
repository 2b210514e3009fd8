"""What every stage shares: its run (places, sources, cache, records), building a package list."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..build.cache import CACHE, COMPILERS, COMPLETE, NOT_MADE, BuildCache, mark_complete, recipe_inputs, stage_marker
from ..build.graph import MergeOrder, Slots, run_graph
from ..build.lock import lock_work_dir
from ..build.phases import PackageBuild, StageContext, build_package
from ..build.plan import GRAPH, SEES_ROOT, build_order, record_graph
from ..build.plan import waits as graph_of
from ..build.profile import StageParams
from ..build.recipes import Recipe, load_recipes
from ..build.remote import Cluster, RemoteBuild, pack, unpack, unpack_verified
from ..build.sandbox import Sandbox, stop_all
from ..build.seed import Seed
from ..build.seed import ensure as ensure_seed
from ..build.sources import SourceStore
from ..errors import BuildError, DiskFullError, RemoteError, SerpentError
from ..files import write_atomic
from ..hashes import SOURCE_DATE_EPOCH, digest, tree_digest
from ..paths import RECIPES
from ..records.metrics import Recorder
from ..rows import CheckRecord, PhaseRecord, SizeRecord

log = logging.getLogger(__name__)


def native_common() -> dict[str, str]:
    """What every build in a chroot sees, whatever its compiler."""
    return {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "KCONFIG_NOTIMESTAMP": "1", "HOME": "/root", "TMPDIR": "/tmp"}


@dataclass
class StageResult:
    stage: str
    phases: list[PhaseRecord] = field(default_factory=list)
    sizes: list[SizeRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)


def recipe_checks(recipes: dict[str, Recipe]) -> dict[str, tuple[str, str]]:
    """The `checks:` of each recipe: {"<package>: <command>": (command, expected output)}."""
    out = {}
    for name, recipe in recipes.items():
        for check in recipe.checks:
            out[f"{name}: {check['name'] or check['run']}"] = (check["run"], check["expect"])
    return out


def make_store(store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True,
               seed: Seed | None = None) -> SourceStore:
    return SourceStore(Path(store_dir) if store_dir else None, mirrors=mirrors or [], upstream=fetch_upstream, seed=seed)


def stage_function(fn: Callable[[StageParams], StageResult]) -> Callable[[StageParams], StageResult]:
    """A stage's entry point: a full disk anywhere in it becomes one clear DiskFullError."""
    @functools.wraps(fn)
    def run(params: StageParams) -> StageResult:
        try:
            return fn(params)
        except OSError as exc:  # trees are copied by files.copy_tree, which says so itself
            if exc.errno != errno.ENOSPC:
                raise
            raise DiskFullError(f"{fn.__name__}: no space left on the device of {params.work_dir}",
                                f"free space there (df -h {params.work_dir}) or give the run another --work-dir; "
                                "finished packages are kept in the build cache") from None
    return run


BUILD_TREES = NOT_MADE[0]  # <work>/<stage>/build/<package>: kept across runs, for a build to resume


def fresh(work: Path, keep: str) -> None:
    """Empty `work` but its `keep` folder, whose trees each say whether they can be resumed."""
    work.mkdir(parents=True, exist_ok=True)
    for child in work.iterdir():
        if child.name == keep and child.is_dir() and not child.is_symlink():
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


@dataclass
class StageRun:
    """One stage's places, sources, recipes, cache and record keeping, made from its parameters."""

    name: str
    params: StageParams
    base: Path          # the work directory: every stage's tree is below it
    work: Path          # <base>/<name>, made anew for each run of the stage
    run: Path           # the run directory: records and logs
    recipes_dir: Path
    store: SourceStore
    seed: Seed
    recorder: Recorder
    jobs: int
    result: StageResult
    cache: BuildCache
    # What the stage's builds see of the stages before it: {"stage0": the seed's key, "stage1":
    # the digest of stage 1's tree, ...}; a build on the host sees stages 0 and 1 alone.
    upstream: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # package -> cache key
    compilers: dict[str, str] = field(default_factory=dict)  # package -> what built it (SizeRecord.compiler)
    check_files: list[Path] = field(default_factory=list)  # files in the run directory the checks' records name
    outputs: dict[str, str] = field(default_factory=dict)  # package -> the digest of its installed tree
    # The same, less the work directory's path (a host build's env names it): equal for builds of
    # the same inputs at two places, which is what `serpent reproduce --against` compares.
    upstream_inputs: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    builds: int = 0  # every build the stage ran or took from the cache (a relink's second passes too)
    checks_from_cache: bool = False
    loaded: dict[str, Recipe] = field(default_factory=dict)  # each recipe read once per stage
    made: str | None = None  # see tree_digest
    cluster: Cluster | None = None  # where builds that see stages 0 and 1 alone go (serpent run --cluster)

    @property
    def logs(self) -> Path:
        return self.run / "logs" / self.name

    @property
    def key(self) -> str:
        """What the stage's checks are kept under: what it built on and what it made."""
        return digest(sorted(self.upstream.items()), sorted(self.outputs.items()))

    @property
    def inputs_key(self) -> str:
        return digest(self.upstream_inputs, sorted(self.inputs.items()))

    def recipes(self, names: list[str]) -> dict[str, Recipe]:
        """The recipes named, in that order, each read from disk once in this stage."""
        missing = [n for n in names if n not in self.loaded]
        if missing:
            self.loaded.update(load_recipes(self.recipes_dir, missing))
        return {n: self.loaded[n] for n in names}

    def recipe_checks(self, packages: list[str]) -> dict[str, tuple[str, str]]:
        return recipe_checks(self.recipes(packages))

    def tree_digest(self) -> str:
        """The digest of what the stage made (its folder but the build trees and the checks'
        scratch), taken once its packages are in, before the checks: what checks are made on."""
        if self.made is None:
            self.made = tree_digest(self.work, skip=NOT_MADE)
        return self.made

    def seed_sandbox(self, path: str = "/usr/bin:/bin") -> Sandbox:
        """Stage 0, read-only, with this stage's trees: where every host-side step runs."""
        return self.seed.sandbox(path=path)

    def record(self, record: PhaseRecord) -> None:
        self.recorder.add(record)
        self.result.phases.append(record)

    def context(self, install_root: Path, sandbox: Sandbox, env: dict[str, str], **kw) -> StageContext:
        """A build in stage 0 sees stage 1 (the toolchain, the sysroot, the build tools) and its own
        tree: never a root another build is merging into."""
        kw.setdefault("sees", [self.base / "stage1"])
        return StageContext(stage=self.name, work=self.work, install_root=install_root, store=self.store,
                            sandbox=sandbox, logs=self.logs, env=env, jobs=self.jobs, compiler=self.params.compiler, **kw)

    def build(self, ctx: StageContext, packages: list[str], recipes: dict[str, Recipe] | None = None,
              after_all: bool = False) -> None:
        """Build `packages` in dependency order, or take them from the cache.

        A package's key hashes the content of what its build sees (see cache.py): the earlier
        stages it sees, and where it sees the root (plan.SEES_ROOT: stage 1's sysroot, stage 3's
        chroot: every build runs on what was installed before it) the output of every package before it. A build that
        never sees the stage's root (stage 2's, which compile against stage 1's sysroot; one on the
        host) sees stages 0 and 1 alone: its declared dependencies only order it.

        Builds run as a graph (see graph.py): one whose view is complete starts, many at once within
        the stage's cores; outputs merge in the stage's order. So a build that sees nothing of the
        stage starts at once, and one that sees the root waits for all before it.

        `recipes`: these instead of the recipes of the same names (the relink's second passes);
        `after_all`: where the builds see the root, they see all the stage built before this call
        too, and their keys say so."""
        recipes = recipes if recipes is not None else self.recipes(packages)
        earlier = dict(self.outputs) if after_all and SEES_ROOT.get(self.name, False) else {}
        depends = {n: [d for d in r.depends if d in recipes] for n, r in recipes.items()}
        order = build_order(depends, packages)
        merges = MergeOrder(order)
        ctx.on_record = self.record  # what the stage builds later with this context is recorded too
        ctx = replace(ctx, on_record=self.record, slots=Slots(self.jobs), merge_turn=merges.turn)
        sizes: dict[str, SizeRecord] = {}
        lock = threading.Lock()

        def one(i: int, name: str) -> None:
            recipe = recipes[name]
            on_host = name in host
            before = waits[name]
            merges.wait_merged(before)
            env = ctx.host_env if on_host else ctx.env
            sandbox = ctx.host_sandbox if on_host else ctx.sandbox
            stages = {s: d for s, d in self.upstream.items() if not on_host or s in ("stage0", "stage1")}
            # Another machine can build what runs in stage 0 and sees only stages 0 and 1: not stage
            # 1's own builds (they see its tree as it grows), nor one that sees the root.
            remote = (self.cluster is not None and self.name != "stage1" and not before and sandbox.seed is not None
                      and not (earlier and not on_host) and set(stages) <= {"stage0", "stage1"})
            sees = {**stages, **(earlier if not on_host else {}), **{d: self.outputs[d] for d in before}}
            runs_in = {"kind": "stage0" if sandbox.seed else "root" if sandbox.root else "host",
                       "path": sandbox.path, "shell": sandbox.shell}
            key = self.cache.key(recipe, self.name, env, sees, runs_in)
            self.keys[name] = key
            self.inputs[name] = digest(recipe_inputs(recipe, self.name),
                                       {k: str(v).replace(str(self.base), "<work>") for k, v in env.items()})
            hit = self.cache.get(key) if self.params.use_cache else None
            # Asked before this package is restored or built: the compiler it was built with, not
            # one it installs (LLVM's clang, tcc) over the link or the /serpent tool it replaces. A
            # worker asks its own, where it builds.
            compiler = PackageBuild(recipe, ctx).compiler() if hit or not remote else ""
            log.info("[%s %d/%d] %s %s%s", self.name, i, len(order), name, recipe.version, " (cached)" if hit else "")
            with lock:
                self.builds += 1
            if hit:
                dest, size = hit
                self.outputs[name] = self.cache.output(key)  # before its merge: what waits on it reads it
                PackageBuild(recipe, ctx, key).restore(dest, self.cache.built_by(key))  # the key: a kept tree stays
                size = replace(size, stage=self.name)  # an entry another stage filled
                with lock:
                    self.hits += 1
            elif remote:
                size, compiler = self.build_remote(recipe, ctx, key, env, sandbox.path, stages)
            else:
                def keep(destdir: Path, size: SizeRecord) -> None:
                    self.outputs[name] = self.cache.put(key, destdir, size, self.recorder.run_id,
                                                        ctx.logs / name / "build.log")
                _, size = build_package(recipe, replace(ctx, on_installed=keep), key)
            sizes[name] = replace(size, compiler=compiler)

        host = {n for n, r in recipes.items() if PackageBuild(r, ctx).on_host}  # the one decision, as the build makes it
        waits = graph_of(self.name, order, host)
        record_graph(self.run / GRAPH, self.name, order, waits)
        try:
            run_graph([(lambda i=i, name=name: one(i, name)) for i, name in enumerate(order, 1)], merges)
        finally:
            for table in (self.keys, self.outputs, self.inputs):  # in the stage's order, not the finishing one
                ordered = sorted(table.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else -1)
                table.clear()
                table.update(ordered)
            for name in order:  # in the stage's order, whatever the order they finished in
                if name in sizes:
                    self.recorder.add(sizes[name])
                    self.result.sizes.append(sizes[name])
            self.compilers.update({n: sizes[n].compiler for n in order if n in sizes})

    def build_remote(self, recipe: Recipe, ctx: StageContext, key: str, env: dict[str, str], path: str,
                     stages: dict[str, str]) -> tuple[SizeRecord, str]:
        """Build on a worker of the cluster: its records and logs come back into this run's; its
        output is checked against its digest before the cache keeps it, then merged in its turn."""
        assert self.cluster is not None
        name = recipe.name
        task = RemoteBuild(stage=self.name, package=name, key=key, recipe=pack(recipe.path),
                           recipe_digest=digest(recipe_inputs(recipe, self.name)), env=env, base=str(self.base),
                           path=path, compiler=self.params.compiler,
                           trees={s: d for s, d in stages.items() if s != "stage0"}, seed=self.params.seed,
                           seed_key=self.seed.build_key, seed_packages=self.seed.manifest.get("packages", {}),
                           mirrors=list(self.params.mirrors), fetch_upstream=self.params.fetch_upstream)
        log.info("%s %s: built by the cluster", self.name, name)
        got = self.cluster.build(task, {s: self.base / s for s in task.trees})
        logs = ctx.logs / name
        shutil.rmtree(logs, ignore_errors=True)
        logs.parent.mkdir(parents=True, exist_ok=True)
        unpack(got.logs, logs, f"{name}'s logs from worker {got.worker}")
        for record in got.records:
            self.record(replace(record, log=str(logs / Path(record.log).name) if record.log else ""))
        kind, message, hint = got.error
        if kind.startswith("build:"):
            _, phase, code = kind.split(":")
            raise BuildError(self.name, name, phase, int(code), logs / f"{phase}.log")
        if kind:
            raise RemoteError(f"worker {got.worker}: {message}", hint or None)
        arriving = self.cache.root / f".{key}.arriving-{os.getpid()}-{threading.get_ident()}"
        self.cache.root.mkdir(parents=True, exist_ok=True)
        try:
            unpack_verified(got.output, arriving, got.digest, f"{name}'s output from worker {got.worker}")
            self.outputs[name] = self.cache.put(key, arriving, got.size, self.recorder.run_id, logs / "build.log")
        finally:
            shutil.rmtree(arriving, ignore_errors=True)
        PackageBuild(recipe, ctx, key).merge(self.cache.root / key / "dest")
        return got.size, got.compiler

    def cached_checks(self) -> list[CheckRecord] | None:
        """The checks of an identical earlier run of this stage, when every package came from the
        cache, each saying which run it replays; None (check again) when the parameters say `recheck`."""
        self.tree_digest()  # before any check runs in the tree
        if not self.params.use_cache or self.hits != self.builds:
            return None
        if self.params.recheck:
            log.info("%s: every package came from the cache; checking it again (--recheck)", self.name)
            return None
        rows = self.cache.get_checks(self.key, self.tree_digest(), files=self.run)
        if rows is None:
            return None
        log.info("%s: every package and the checks came from the cache", self.name)
        self.checks_from_cache = True
        return [CheckRecord.replayed({**r, "cached_from": r.get("cached_from") or "an earlier run, not recorded"})
                for r in rows]

    def finish(self, checks: list[CheckRecord]) -> StageResult:
        """Record the checks; a stage none of whose checks failed is marked complete for the next
        stages, and its checks are kept for a rerun that builds nothing, as results of this run."""
        self.recorder.add_all(checks)
        self.result.checks = checks
        write_atomic(self.work / COMPILERS, json.dumps(self.compilers, indent=1))  # stage 4's build info reads it
        if self.cluster is not None:
            self.cluster.close()
        if not any(c.fails for c in checks):
            if not self.checks_from_cache and self.made is not None:  # a stage that may replay its checks
                run_id = self.recorder.run_id or self.run.name
                self.cache.put_checks(self.key, [{**asdict(c), "cached_from": run_id} for c in checks], self.tree_digest(),
                                      files=[p for p in self.check_files if p.is_file()])
            mark_complete(self.work, {"key": self.key, "inputs": self.inputs_key, "run": str(self.run),
                                      "packages": self.keys, "digest": self.made})
        return self.result


_watched: int | None = None


def watch_parent() -> None:
    """A stage's kernel outlives `serpent run` if that is killed (SIGKILL, the OOM killer) and an
    ancestor reaps orphans (a service manager, a test runner): then Jupyter's own check, for a
    parent of pid 1, never fires. This one does: once the process that started this one is gone,
    it stops every build running here and exits."""
    global _watched
    if _watched is not None:
        return
    _watched = parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.error("the process that started this stage (pid %d) is gone: stopping its builds", parent)
        stop_all()
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def begin(name: str, params: StageParams, after: tuple[str, ...] = ()) -> StageRun:
    """Start stage `name`: the seed (stage 0, made if missing), a fresh `<work_dir>/<name>`, the
    store, the cache, the recorder.

    It takes the work directory's lock first (a second run on it refuses), and needs the
    stages `after` to have completed there: the digests of their trees are part of the keys of
    this stage's builds that see them, as is the seed's exact package set."""
    base = Path(params.work_dir).resolve()
    watch_parent()
    lock_work_dir(base, f"stage {name}")
    if not params.seed:
        raise SerpentError(f"{name}: no seed given", "pass the profile's `seed:` block (params/mini.yaml has one)")
    seed_root = ensure_seed(params.seed)
    upstream = {"stage0": seed_root.build_key} | {s: stage_digest(base / s) for s in after}
    upstream_inputs = [seed_root.build_key] + [stage_marker(base / s).get("inputs", "") for s in after]
    old_caches = [d for d in (base / "cache").glob("stage[0-9]") if d.is_dir()]
    if old_caches and not (base / "cache" / CACHE).is_dir():
        log.warning("the build cache of %s is from before builds were keyed by what they see (content digests): "
                    "every package builds once more, into %s. The old entries are left in %s; remove them to free "
                    "their space.", base, base / "cache" / CACHE, ", ".join(str(d) for d in sorted(old_caches)))
    # Later stages were built on this one's old output: they are no longer complete.
    for later in sorted(base.glob("stage[0-9]")):
        if later.name > name and name.startswith("stage"):
            (later / COMPLETE).unlink(missing_ok=True)
    work = base / name
    fresh(work, keep=BUILD_TREES)
    run = Path(params.run_dir).resolve()
    return StageRun(name=name, params=params, base=base, work=work, run=run,
                    recipes_dir=Path(params.recipes_dir) if params.recipes_dir else RECIPES,
                    store=make_store(params.store_dir, params.mirrors, params.fetch_upstream, seed_root),
                    seed=seed_root, recorder=Recorder(run, params.run_id, params.profile),
                    jobs=params.jobs or os.cpu_count() or 1, result=StageResult(name),
                    cache=BuildCache(base / "cache" / CACHE), upstream=upstream, upstream_inputs=upstream_inputs,
                    cluster=Cluster(params.cluster, seed_root, params.seed, params.cluster_workers)
                    if params.cluster else None)


def stage_digest(stage_dir: Path) -> str:
    """The digest of a finished stage's tree, as its marker recorded it (or taken now, for a
    stage finished before markers held it)."""
    return stage_marker(stage_dir).get("digest") or tree_digest(stage_dir, skip=NOT_MADE)
