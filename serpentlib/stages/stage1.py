"""Stage 1: the cross toolchain, built by the host clang into a sysroot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..build.profile import StageParams
from ..files import copy_tree
from . import verify
from .common import SOURCE_DATE_EPOCH, StageResult, begin, stage_function

CLANG_CFG = """# {triple}: C cross compiler, written by serpentlib stage1.
# The wrappers beside this file add --sysroot and -resource-dir, found from where they lie.
--target={triple}
--gcc-toolchain=/nonexistent
-fuse-ld=lld
-rtlib=compiler-rt
-unwindlib=libunwind
"""
CLANGXX_CFG = """# {triple}: C++ cross compiler, written by serpentlib stage1
@{triple}.cfg
-stdlib=libc++
"""
WRAPPER = """#!/bin/sh
# {triple}-{tool}: the seed's {tool} with the stage1 configuration; needs no other flags.
# Relocatable: the sysroot is found beside this file's folder, wherever the toolchain was moved.
self=$(readlink -f "$0"); here=${{self%/*}}; top=${{here%/*}}
exec {compiler} --config "$here/{cfg}" --sysroot="$top/sysroot" -resource-dir="$top/sysroot/{resource}" "$@"
"""


def write_wrappers(bindir: Path, triple: str, sysroot: Path, resource: Path) -> dict[str, Path]:
    """`<triple>-clang` and `-clang++` wrappers with explicit config files (Debian's clang 14 ignores
    config auto-discovery). `sysroot` must be `bindir`'s sibling and hold `resource`."""
    assert sysroot.parent == bindir.parent, "the wrappers find the sysroot beside their own folder"
    bindir.mkdir(parents=True, exist_ok=True)
    c_cfg, cxx_cfg = bindir / f"{triple}.cfg", bindir / f"{triple}-cxx.cfg"
    c_cfg.write_text(CLANG_CFG.format(triple=triple))
    cxx_cfg.write_text(CLANGXX_CFG.format(triple=triple))
    out = {}
    for tool, cfg in (("clang", c_cfg), ("clang++", cxx_cfg)):
        path = bindir / f"{triple}-{tool}"
        path.write_text(WRAPPER.format(triple=triple, tool=tool, compiler=f"/usr/bin/{tool}", cfg=cfg.name,
                                       resource=resource.relative_to(sysroot)))
        path.chmod(0o755)
        out[tool] = path
    return out


@stage_function
def stage1(params: StageParams) -> StageResult:
    """Build the cross toolchain: kernel headers, musl and the LLVM runtimes into a sysroot,
    driven by the seed's clang (stage 0); write the wrappers; verify the result. `build_tools`
    are built by the seed for the seed into `stage1/tools` (what a cross build runs on the build
    machine, such as LLVM's tablegens).

    `params.recheck` runs the checks again when every package came from the cache (see
    StageRun.cached_checks)."""
    target, cflags, build_tools = params.target, params.cflags, params.build_tools
    st = begin("stage1", params)
    sysroot, bindir = st.work / "sysroot", st.work / "bin"
    clang_version, host_resource = st.seed.clang["version"], st.seed.clang["resource_dir"]
    resource = sysroot / "usr" / "lib" / "clang" / clang_version
    (resource / "lib").mkdir(parents=True)
    # The compiler's own freestanding headers (stddef.h, stdarg.h, ...) come with the compiler.
    copy_tree(st.seed.root / host_resource.lstrip("/") / "include", resource / "include")
    env = {"TARGET": target, "SYSROOT": str(sysroot), "RESOURCE_DIR": str(resource),
           "HOST_RESOURCE_DIR": str(host_resource), "CLANG_VERSION": clang_version,
           "TARGET_CFLAGS": cflags, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    st.build(st.context(sysroot, st.seed_sandbox(), env), params.packages)
    write_wrappers(bindir, target, sysroot, resource)
    tools = st.work / "tools"
    if build_tools:
        native = {"CC": "clang", "CXX": "clang++", "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
        st.build(st.context(tools, st.seed_sandbox(), native), build_tools)
    checks = st.cached_checks()
    if checks is None:
        checks = verify.check_cross_compiler("stage1", bindir, target, sysroot, st.work / "checks", st.logs / "checks",
                                             st.seed_sandbox(f"{bindir}:/usr/bin:/bin"))
        checks += verify.check_elf_hygiene("stage1", sysroot, extra_forbidden=[str(st.work)])
        if build_tools:  # the tools run in the seed, where they were built for
            in_seed = replace(st.seed_sandbox(f"{tools}/usr/bin:/usr/bin:/bin"), visible=[st.work])
            checks += verify.check_in_root("stage1", in_seed, st.recipe_checks(build_tools),
                                           st.logs / "checks")
    return st.finish(checks)
