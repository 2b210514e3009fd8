"""Stage 1: the cross toolchain, built by the host clang into a sysroot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import verify
from ..build import StageContext
from ..metrics import Recorder
from ..profile import PROJECT
from ..sandbox import Sandbox
from .common import SOURCE_DATE_EPOCH, StageResult, build_packages, host_clang, make_store


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
    clang_version, host_resource, _ = host_clang()
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


