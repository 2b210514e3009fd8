"""Stage 2: a minimal runtime cross-compiled by the stage1 toolchain into its own root."""

from __future__ import annotations

import os
from pathlib import Path

from .. import verify
from ..recipes import load_recipes
from ..sandbox import Bind, Sandbox
from .common import SOURCE_DATE_EPOCH, StageResult, begin, stage_function

# /bin, /sbin, /lib and /lib64 are links into /usr, as in the seed.
ROOT_LINKS = {"bin": "usr/bin", "sbin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib", "usr/sbin": "bin",
              "usr/lib64": "lib"}
ROOT_DIRS = ("usr/bin", "usr/lib", "usr/include", "usr/share", "etc", "tmp", "proc", "dev", "root")


# The base files, as Debian's base-files and base-passwd give them: stage 3's root gets them
# at the start (tools look up users), stage 4's from its `filesystem` package.
BASE_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}


def write_base_files(root: Path) -> None:
    for rel, text in BASE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        (root / rel).chmod(0o640 if rel.endswith("shadow") else 0o644)


def make_root_layout(root: Path) -> None:
    for d in ROOT_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    for link, target in ROOT_LINKS.items():
        path = root / link
        if not path.is_symlink():
            os.symlink(target, path)
    (root / "tmp").chmod(0o1777)


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


def root_sandbox(root: Path, shell: str = "/usr/bin/sh", binds: list[Bind] | None = None,
                 path: str = "/usr/bin:/bin:/usr/sbin:/sbin") -> Sandbox:
    return Sandbox(root=root, binds=binds or [], path=path, shell=shell)


def recipe_checks(recipes_dir: Path, packages: list[str]) -> dict[str, tuple[str, str]]:
    """The `checks:` of each recipe: {"<package>: <command>": (command, expected output)}."""
    out = {}
    for name, recipe in load_recipes(recipes_dir, packages).items():
        for check in recipe.checks:
            out[f"{name}: {check['name'] or check['run']}"] = (check["run"], check["expect"])
    return out


@stage_function
def stage2(*, target: str, packages: list[str], cflags: str = "-O2 -pipe", recheck: bool = False,
           **params) -> StageResult:
    """Cross-compile the runtime stage3 starts from into `<work>/stage2/root`; verify it alone."""
    st = begin("stage2", after=("stage1",), **params)
    bindir = toolchain(st.base)
    root = st.work / "root"
    make_root_layout(root)
    env = {**cross_env(bindir, target, cflags, st.seed.clang["triple"]),
           **stage1_env(st.base, st.seed.clang["version"], cflags)}
    st.build(st.context(root, st.seed_sandbox(f"{bindir}:/usr/bin:/bin"), env), packages)
    checks = st.cached_checks(recheck)
    if checks is None:
        checks = verify.check_root_closure("stage2", root)
        checks += verify.check_elf_hygiene("stage2", root, extra_forbidden=[str(st.base)])
        # The root alone: nothing from the host is mounted but /proc, a minimal /dev and a tmpfs /tmp.
        checks += verify.check_in_root("stage2", root_sandbox(root), recipe_checks(st.recipes, packages),
                                       st.logs / "checks")
    return st.finish(checks)
