"""What differs per stage: small functions the stage notebooks call."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import verify
from .build import SizeRecord, StageContext, build_package
from .metrics import CheckRecord, Recorder
from .plan import build_order
from .profile import PROJECT, Profile
from .recipes import load_recipes
from .sandbox import PhaseRecord, Sandbox
from .sources import SourceStore

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


def host_clang() -> tuple[str, Path]:
    """The seed compiler's version and resource directory."""
    clang = shutil.which("clang")
    if not clang:
        from .errors import SerpentError
        raise SerpentError("the host has no clang (the seed compiler)", "run `make setup`")
    version = subprocess.run([clang, "-dumpversion"], capture_output=True, text=True, check=True).stdout.strip()
    resource = subprocess.run([clang, "-print-resource-dir"], capture_output=True, text=True, check=True).stdout.strip()
    return version, Path(resource)


def make_store(store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True) -> SourceStore:
    return SourceStore(Path(store_dir) if store_dir else None, mirrors=mirrors or [], upstream=fetch_upstream)


def build_packages(ctx: StageContext, recipes_dir: Path, packages: list[str], recorder: Recorder,
                   result: StageResult) -> None:
    """Build `packages` (and what they depend on, already in the list) in dependency order."""
    recipes = load_recipes(recipes_dir, packages)
    order = build_order({n: [d for d in r.depends if d in recipes] for n, r in recipes.items()}, packages)
    ctx.on_record = lambda rec: (recorder.add(rec), result.phases.append(rec))
    for i, name in enumerate(order, 1):
        log.info("[%s %d/%d] %s %s", ctx.stage, i, len(order), name, recipes[name].version)
        _, size = build_package(recipes[name], ctx)
        recorder.add(size)
        result.sizes.append(size)


# -- stage 1 ------------------------------------------------------------------------------------
CLANG_CFG = """# {triple}: C cross compiler into {sysroot}, written by serpentlib stage1
--target={triple}
--sysroot={sysroot}
--gcc-toolchain=/nonexistent
-resource-dir={resource}
-fuse-ld=lld
-rtlib=compiler-rt
-unwindlib=libunwind
"""
CLANGXX_CFG = """# {triple}: C++ cross compiler, written by serpentlib stage1
@{c_cfg}
-stdlib=libc++
"""
WRAPPER = """#!/bin/sh
# {triple}-{tool}: the host {tool} with the stage1 configuration; needs no other flags.
exec {compiler} --config "{cfg}" "$@"
"""


def write_wrappers(bindir: Path, triple: str, sysroot: Path, resource: Path) -> dict[str, Path]:
    """`<triple>-clang` and `-clang++` wrappers with explicit config files (Debian's clang 14 ignores
    config auto-discovery)."""
    bindir.mkdir(parents=True, exist_ok=True)
    c_cfg, cxx_cfg = bindir / f"{triple}.cfg", bindir / f"{triple}-cxx.cfg"
    c_cfg.write_text(CLANG_CFG.format(triple=triple, sysroot=sysroot, resource=resource))
    cxx_cfg.write_text(CLANGXX_CFG.format(triple=triple, c_cfg=c_cfg))
    out = {}
    for tool, cfg in (("clang", c_cfg), ("clang++", cxx_cfg)):
        path = bindir / f"{triple}-{tool}"
        compiler = shutil.which(tool) or f"/usr/bin/{tool}"
        path.write_text(WRAPPER.format(triple=triple, tool=tool, compiler=compiler, cfg=cfg))
        path.chmod(0o755)
        out[tool] = path
    return out


def stage1(*, target: str, packages: list[str], work_dir: str, run_dir: str, run_id: str = "", profile: str = "",
           recipes_dir: str = "", store_dir: str = "", mirrors: list[str] | None = None, fetch_upstream: bool = True,
           jobs: int = 0, cflags: str = "-O2 -pipe") -> StageResult:
    """Build the cross toolchain: kernel headers, musl and the LLVM runtimes into a sysroot,
    driven by the host clang; write the wrappers; verify the result."""
    work = Path(work_dir).resolve() / "stage1"
    run = Path(run_dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    sysroot, bindir = work / "sysroot", work / "bin"
    clang_version, host_resource = host_clang()
    major = clang_version.split(".")[0]
    resource = sysroot / "usr" / "lib" / "clang" / clang_version
    (resource / "lib").mkdir(parents=True)
    # The compiler's own freestanding headers (stddef.h, stdarg.h, ...) come with the compiler.
    shutil.copytree(host_resource / "include", resource / "include", symlinks=True)
    cross = f"--target={target} --sysroot={sysroot} --gcc-toolchain=/nonexistent -resource-dir={resource}"
    env = {"TARGET": target, "SYSROOT": str(sysroot), "RESOURCE_DIR": str(resource),
           "HOST_RESOURCE_DIR": str(host_resource), "CLANG_VERSION": clang_version, "CLANG_MAJOR": major,
           "CROSS_FLAGS": cross, "TARGET_CFLAGS": cflags, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    recorder = Recorder(run, run_id, profile)
    ctx = StageContext(stage="stage1", work=work, install_root=sysroot,
                       store=make_store(store_dir, mirrors, fetch_upstream), sandbox=Sandbox(path="/usr/bin:/bin"),
                       logs=run / "logs" / "stage1", env=env, jobs=jobs or os.cpu_count() or 1)
    result = StageResult("stage1")
    build_packages(ctx, Path(recipes_dir) if recipes_dir else PROJECT / "recipes", packages, recorder, result)
    write_wrappers(bindir, target, sysroot, resource)
    checks = verify.check_cross_compiler("stage1", bindir, target, sysroot, work / "checks", run / "logs" / "stage1" / "checks")
    checks += verify.check_elf_hygiene("stage1", sysroot, extra_forbidden=[str(work)])
    recorder.add_all(checks)
    result.checks = checks
    return result


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
