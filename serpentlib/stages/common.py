"""What every stage shares: contexts, building a package list, fetching a profile's sources."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..build import SizeRecord, StageContext, build_package
from ..errors import SerpentError
from ..metrics import CheckRecord, Recorder
from ..plan import build_order
from ..profile import PROJECT, Profile
from ..recipes import load_recipes
from ..sandbox import PhaseRecord, Sandbox
from ..sources import SourceStore

log = logging.getLogger(__name__)
SOURCE_DATE_EPOCH = "1577836800"  # 2020-01-01: fixed, so builds that embed a date are reproducible


@dataclass
class StageResult:
    stage: str
    phases: list[PhaseRecord] = field(default_factory=list)
    sizes: list[SizeRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckRecord]:
        return [c for c in self.checks if not c.passed]


@lru_cache(maxsize=1)
def host_clang() -> tuple[str, Path, str]:
    """The seed compiler's version, resource directory and default triple."""
    clang = shutil.which("clang")
    if not clang:
        raise SerpentError("the host has no clang (the seed compiler)", "run `make setup`")

    def ask(flag: str) -> str:
        return subprocess.run([clang, flag], capture_output=True, text=True, check=True).stdout.strip()

    return ask("-dumpversion"), Path(ask("-print-resource-dir")), ask("-dumpmachine")


def make_store(store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True) -> SourceStore:
    return SourceStore(Path(store_dir) if store_dir else None, mirrors=mirrors or [], upstream=fetch_upstream)


@dataclass
class StageRun:
    """One stage's places, sources and record keeping, made from the notebook's parameters."""

    name: str
    base: Path          # the work directory: every stage's tree is below it
    work: Path          # <base>/<name>, made anew for each run of the stage
    run: Path           # the run directory: records and logs
    recipes: Path
    store: SourceStore
    recorder: Recorder
    jobs: int
    result: StageResult

    @property
    def logs(self) -> Path:
        return self.run / "logs" / self.name

    def context(self, install_root: Path, sandbox: Sandbox, env: dict[str, str], **kw) -> StageContext:
        return StageContext(stage=self.name, work=self.work, install_root=install_root, store=self.store,
                            sandbox=sandbox, logs=self.logs, env=env, jobs=self.jobs, **kw)

    def build(self, ctx: StageContext, packages: list[str]) -> None:
        """Build `packages` in dependency order (each list holds what its packages depend on)."""
        recipes = load_recipes(self.recipes, packages)
        order = build_order({n: [d for d in r.depends if d in recipes] for n, r in recipes.items()}, packages)
        ctx.on_record = lambda rec: (self.recorder.add(rec), self.result.phases.append(rec))
        for i, name in enumerate(order, 1):
            log.info("[%s %d/%d] %s %s", self.name, i, len(order), name, recipes[name].version)
            _, size = build_package(recipes[name], ctx)
            self.recorder.add(size)
            self.result.sizes.append(size)

    def finish(self, checks: list[CheckRecord]) -> StageResult:
        self.recorder.add_all(checks)
        self.result.checks = checks
        return self.result


def begin(name: str, *, work_dir: str, run_dir: str, run_id: str = "", profile: str = "", recipes_dir: str = "",
          store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True,
          jobs: int = 0) -> StageRun:
    """Start stage `name`: a fresh `<work_dir>/<name>`, the store, the recorder."""
    base = Path(work_dir).resolve()
    work = base / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = Path(run_dir).resolve()
    return StageRun(name=name, base=base, work=work, run=run,
                    recipes=Path(recipes_dir) if recipes_dir else PROJECT / "recipes",
                    store=make_store(store_dir, mirrors, fetch_upstream), recorder=Recorder(run, run_id, profile),
                    jobs=jobs or os.cpu_count() or 1, result=StageResult(name))


# -- fetch ---------------------------------------------------------------------------------------
def fetch_profile(profile: Profile, store_dir: str | None = None) -> pd.DataFrame:
    """Fetch and verify every source of every package in the profile; one row per source."""
    names: list[str] = []
    for n in profile.stage_numbers:
        names += [p for p in profile.parameters(n).get("packages", []) if p not in names]
    params = profile.common
    store = make_store(store_dir or params.get("store_dir", ""), params.get("mirrors"), params.get("fetch_upstream", True))
    rows = []
    recipes_dir = Path(params.get("recipes_dir") or PROJECT / "recipes")
    for name, recipe in load_recipes(recipes_dir, names).items():
        for source in recipe.sources:
            got = store.fetch(source)
            rows.append({"package": name, "file": source.filename, "sha256": source.sha256[:16] + "...",
                         "bytes": got.size, "from": got.origin})
            log.info("%-16s %s ok (%s)", name, source.filename, got.origin)
    return pd.DataFrame(rows)
