"""Stage 2: a minimal runtime cross-compiled by the stage1 toolchain into its own root."""

from __future__ import annotations

from pathlib import Path

from ..build.profile import StageParams
from . import verify
from .common import SOURCE_DATE_EPOCH, StageResult, begin, stage_function
from .layout import make_root_layout, root_sandbox

def toolchain(base: Path) -> Path:
    """The stage1 wrappers' directory (`begin(..., after=("stage1",))` made sure stage 1 completed)."""
    return base / "stage1" / "bin"


def stage1_env(base: Path, clang_version: str, cflags: str) -> dict[str, str]:
    """Where stage 1 put things, for recipes that build for the target with the seed's clang
    directly (compiler-rt, the LLVM runtimes) or run stage 1's build tools (LLVM's tablegens)."""
    sysroot = base / "stage1" / "sysroot"
    return {"SYSROOT": str(sysroot), "RESOURCE_DIR": str(sysroot / "usr" / "lib" / "clang" / clang_version),
            "CLANG_VERSION": clang_version, "TARGET_CFLAGS": cflags,
            "BUILD_TOOLS": str(base / "stage1" / "tools" / "usr" / "bin")}


def cross_env(bindir: Path, target: str, cflags: str, build_triple: str) -> dict[str, str]:
    """What a cross build sees: the stage1 wrappers as CC/CXX, LLVM's binutils, the triples
    (`build_triple`: the seed compiler's, where the build runs)."""
    # Bare names, found on PATH: a path here ends up in files such as bashbug, and two builds at
    # different work directories would differ.
    return {"CC": f"{target}-clang", "CXX": f"{target}-clang++",
            "AR": "llvm-ar", "RANLIB": "llvm-ranlib", "NM": "llvm-nm", "STRIP": "llvm-strip",
            "OBJCOPY": "llvm-objcopy", "OBJDUMP": "llvm-objdump", "READELF": "llvm-readelf",
            "CC_FOR_BUILD": "clang", "HOSTCC": "clang", "CFLAGS": cflags, "CXXFLAGS": cflags,
            "TARGET": target, "HOST": target, "BUILD": build_triple, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
            "KCONFIG_NOTIMESTAMP": "1", "STAGE1": str(bindir.parent)}


@stage_function
def stage2(params: StageParams) -> StageResult:
    """Cross-compile the runtime stage3 starts from into `<work>/stage2/root`; verify it alone."""
    st = begin("stage2", params, after=("stage1",))
    bindir = toolchain(st.base)
    root = st.work / "root"
    make_root_layout(root)
    env = {**cross_env(bindir, params.target, params.cflags, st.seed.clang["triple"]),
           **stage1_env(st.base, st.seed.clang["version"], params.cflags)}
    st.build(st.context(root, st.seed_sandbox(f"{bindir}:/usr/bin:/bin"), env), params.packages)
    checks = st.cached_checks()
    if checks is None:
        checks = verify.check_root_closure("stage2", root)
        checks += verify.check_elf_hygiene("stage2", root, extra_forbidden=[str(st.base)])
        # The root alone: nothing from the host is mounted but /proc, a minimal /dev and a tmpfs /tmp.
        checks += verify.check_in_root("stage2", root_sandbox(root), st.recipe_checks(params.packages),
                                       st.logs / "checks")
    return st.finish(checks)
