"""What every stage shares: contexts, building a package list, fetching a profile's sources."""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..build import PackageBuild, SizeRecord, StageContext, build_package
from ..cache import BuildCache, digest, recipe_inputs
from ..errors import DiskFullError, SerpentError
from ..lock import lock_work_dir
from ..metrics import CheckRecord, Recorder
from ..plan import build_order
from ..profile import PROJECT
from ..recipes import load_recipes
from ..sandbox import PhaseRecord, Sandbox
from ..seed import Seed
from ..seed import ensure as ensure_seed
from ..sources import SourceStore

log = logging.getLogger(__name__)
SOURCE_DATE_EPOCH = "1577836800"  # 2020-01-01: fixed, so builds that embed a date are reproducible


@dataclass
class StageResult:
    stage: str
    phases: list[PhaseRecord] = field(default_factory=list)
    sizes: list[SizeRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)


def make_store(store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True,
               seed: Seed | None = None) -> SourceStore:
    return SourceStore(Path(store_dir) if store_dir else None, mirrors=mirrors or [], upstream=fetch_upstream, seed=seed)


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, shutil.Error):  # copytree gathers its errors: any ENOSPC among them
        return any("[Errno 28]" in str(e) for e in exc.args[0]) if exc.args and isinstance(exc.args[0], list) else False
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def stage_function(fn: Callable[..., StageResult]) -> Callable[..., StageResult]:
    """A stage's entry point: a full disk anywhere in it becomes one clear DiskFullError."""
    @functools.wraps(fn)
    def run(**params: Any) -> StageResult:
        try:
            return fn(**params)
        except (OSError, shutil.Error) as exc:
            if not _disk_full(exc):
                raise
            work = params.get("work_dir", ".")
            raise DiskFullError(f"{fn.__name__}: no space left on the device of {work}",
                                f"free space there (df -h {work}) or give the run another --work-dir; "
                                "finished packages are kept in the build cache") from None
    return run


COMPLETE = ".complete"  # written into a stage's tree when it finished with every check passed
BUILD_TREES = "build"  # <work>/<stage>/build/<package>: kept across runs, for a build to resume


def fresh(work: Path, keep: str) -> None:
    """Empty `work` but its `keep` folder, whose trees each say whether they can be resumed."""
    work.mkdir(parents=True, exist_ok=True)
    for child in work.iterdir():
        if child.name == keep and child.is_dir() and not child.is_symlink():
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def stage_key(stage_dir: Path) -> str:
    """The cache key of a finished stage, or a clear error when it did not finish."""
    return stage_marker(stage_dir)["key"]


def stage_marker(stage_dir: Path) -> dict:
    """What a finished stage recorded: its key, its run, each package's cache key."""
    marker = stage_dir / COMPLETE
    if not marker.is_file():
        raise SerpentError(f"{stage_dir.name} has not completed in {stage_dir.parent}",
                           f"run it first with the same --work-dir: serpent run --stage {stage_dir.name[-1]}")
    return json.loads(marker.read_text())


@dataclass
class StageRun:
    """One stage's places, sources, cache and record keeping, made from the notebook's parameters."""

    name: str
    base: Path          # the work directory: every stage's tree is below it
    work: Path          # <base>/<name>, made anew for each run of the stage
    run: Path           # the run directory: records and logs
    recipes: Path
    store: SourceStore
    seed: Seed
    recorder: Recorder
    jobs: int
    result: StageResult
    cache: BuildCache
    use_cache: bool = True
    upstream: list[str] = field(default_factory=list)  # keys of what the stage builds from
    keys: dict[str, str] = field(default_factory=dict)  # package -> cache key
    # The same, less the work directory's path (a host build's env names it): equal for builds of
    # the same inputs at two places, which is what `serpent reproduce --against` compares.
    upstream_inputs: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    hits: int = 0
    checks_from_cache: bool = False

    @property
    def logs(self) -> Path:
        return self.run / "logs" / self.name

    @property
    def key(self) -> str:
        return digest(self.upstream, list(self.keys.items()))

    @property
    def inputs_key(self) -> str:
        return digest(self.upstream_inputs, list(self.inputs.items()))

    def seed_sandbox(self, path: str = "/usr/bin:/bin") -> Sandbox:
        """Stage 0, read-only, with this stage's trees: where every host-side step runs."""
        return self.seed.sandbox(path=path)

    def context(self, install_root: Path, sandbox: Sandbox, env: dict[str, str], **kw) -> StageContext:
        return StageContext(stage=self.name, work=self.work, install_root=install_root, store=self.store,
                            sandbox=sandbox, logs=self.logs, env=env, jobs=self.jobs, **kw)

    def build(self, ctx: StageContext, packages: list[str], chain: bool = False) -> None:
        """Build `packages` in dependency order, or take them from the cache.

        A package's key covers the keys of what it builds against: its declared dependencies,
        or with `chain` (a chroot stage, where every build runs on the tools installed before
        it) every package before it."""
        recipes = load_recipes(self.recipes, packages)
        depends = {n: [d for d in r.depends if d in recipes] for n, r in recipes.items()}
        order = build_order(depends, packages)
        ctx.on_record = lambda rec: (self.recorder.add(rec), self.result.phases.append(rec))
        for i, name in enumerate(order, 1):
            recipe = recipes[name]
            on_host = recipe.build_for(self.name).on_host and ctx.host_sandbox is not None
            before = order[:i - 1] if chain else build_order(depends, [name])[:-1]
            env = ctx.host_env if on_host else ctx.env
            key = self.cache.key(recipe, self.name, env, self.upstream + [self.keys[d] for d in before])
            self.keys[name] = key
            self.inputs[name] = digest(recipe_inputs(recipe, self.name),
                                       {k: str(v).replace(str(self.base), "<work>") for k, v in env.items()})
            hit = self.cache.get(key) if self.use_cache else None
            log.info("[%s %d/%d] %s %s%s", self.name, i, len(order), name, recipe.version, " (cached)" if hit else "")
            if hit:
                dest, size = hit
                PackageBuild(recipe, ctx, key).restore(dest, self.cache.built_by(key))  # the key: a kept tree stays
                self.hits += 1
            else:
                ctx.on_installed = lambda destdir, size, key=key, name=name: self.cache.put(
                    key, destdir, size, self.recorder.run_id, ctx.logs / name / "build.log")
                _, size = build_package(recipe, ctx, key)
            self.recorder.add(size)
            self.result.sizes.append(size)

    def cached_checks(self, recheck: bool = False) -> list[CheckRecord] | None:
        """The checks of an identical earlier run of this stage, when every package came from the
        cache, each saying which run it replays; None (check again) when asked to `recheck`."""
        if not self.use_cache or self.hits != len(self.keys):
            return None
        if recheck:
            log.info("%s: every package came from the cache; checking it again (--recheck)", self.name)
            return None
        rows = self.cache.get_checks(self.key)
        if rows is None:
            return None
        log.info("%s: every package and the checks came from the cache", self.name)
        self.checks_from_cache = True
        return [CheckRecord(**{**r, "cached_from": r.get("cached_from") or "an earlier run, not recorded"})
                for r in rows]

    def finish(self, checks: list[CheckRecord]) -> StageResult:
        """Record the checks; a stage none of whose checks failed is marked complete for the next
        stages, and its checks are kept for a rerun that builds nothing, as results of this run."""
        self.recorder.add_all(checks)
        self.result.checks = checks
        if all(c.passed for c in checks):
            if not self.checks_from_cache:
                run_id = self.recorder.run_id or self.run.name
                self.cache.put_checks(self.key, [{**asdict(c), "cached_from": run_id} for c in checks])
            (self.work / COMPLETE).write_text(json.dumps({"key": self.key, "inputs": self.inputs_key,
                                                          "run": str(self.run), "packages": self.keys}) + "\n")
        return self.result


def begin(name: str, *, work_dir: str, run_dir: str, run_id: str = "", profile: str = "", recipes_dir: str = "",
          store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True,
          jobs: int = 0, use_cache: bool = True, after: tuple[str, ...] = (), seed: dict | None = None) -> StageRun:
    """Start stage `name`: the seed (stage 0, made if missing), a fresh `<work_dir>/<name>`, the
    store, the cache, the recorder.

    It takes the work directory's lock first (a second run on it refuses), and needs the
    stages `after` to have completed there: their keys are part of every key of this stage, as
    is the seed's exact package set."""
    base = Path(work_dir).resolve()
    lock_work_dir(base, f"stage {name}")
    if not seed:
        raise SerpentError(f"{name}: no seed given", "pass the profile's `seed:` block (params/mini.yaml has one)")
    seed_root = ensure_seed(seed)
    upstream = [seed_root.build_key] + [stage_key(base / s) for s in after]
    upstream_inputs = [seed_root.build_key] + [stage_marker(base / s).get("inputs", "") for s in after]
    # Later stages were built on this one's old output: they are no longer complete.
    for later in sorted(base.glob("stage[0-9]")):
        if later.name > name:
            (later / COMPLETE).unlink(missing_ok=True)
    work = base / name
    fresh(work, keep=BUILD_TREES)
    run = Path(run_dir).resolve()
    return StageRun(name=name, base=base, work=work, run=run,
                    recipes=Path(recipes_dir) if recipes_dir else PROJECT / "recipes",
                    store=make_store(store_dir, mirrors, fetch_upstream, seed_root), seed=seed_root,
                    recorder=Recorder(run, run_id, profile),
                    jobs=jobs or os.cpu_count() or 1, result=StageResult(name),
                    cache=BuildCache(base / "cache" / name), use_cache=use_cache, upstream=upstream,
                    upstream_inputs=upstream_inputs)
