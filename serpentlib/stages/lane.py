"""The lane: stage 3's recipes cross-built in minutes by stage 1's toolchain, to learn that they
build against musl (systemd's, with libwildebeest) before they meet the hours of a full stage 3.

Stage 1's wrappers and sysroot are copied to `<work>/lane`; each package is cross-built there in
stage 0, as stage 2 builds (the recipes' `stage2:` overrides), and merged into that sysroot, so
the next one compiles and links against it (pkg-config and meson look there too)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..build.phases import merge_tree
from ..build.profile import StageParams
from ..errors import SerpentError
from ..files import copy_tree
from ..rows import CheckRecord
from . import boot, verify
from .common import StageResult, StageRun, begin, stage_function
from .compilers import final_compiler
from .relink import check_names, relink
from .stage2 import cross_env, stage1_env

# What the lane builds unless told otherwise: systemd, udev and dbus with what they need, and
# the relink that follows.
SYSTEMD = ["libcap", "util-linux", "libwildebeest", "expat", "systemd", "dbus"]
RELINK = ["util-linux", "systemd", "dbus"]

# meson's view of the target; the compilers are the stage 1 wrappers, found on PATH.
CROSS_FILE = """[binaries]
c = '{target}-clang'
cpp = '{target}-clang++'
ar = 'llvm-ar'
nm = 'llvm-nm'
strip = 'llvm-strip'
objcopy = 'llvm-objcopy'
readelf = 'llvm-readelf'
pkgconfig = 'pkg-config'

[properties]
sys_root = '{sysroot}'
pkg_config_libdir = '{sysroot}/usr/lib/pkgconfig:{sysroot}/usr/share/pkgconfig'

[host_machine]
system = 'linux'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
"""


def sysroot_env(sysroot: Path, target: str) -> dict[str, str]:
    """pkg-config and meson pointed at `sysroot`: a .pc file's paths are prefixed with it."""
    cross = sysroot.parent / "bin" / "meson-cross.ini"
    cross.write_text(CROSS_FILE.format(target=target, sysroot=sysroot))
    return {"PKG_CONFIG_SYSROOT_DIR": str(sysroot),
            "PKG_CONFIG_LIBDIR": f"{sysroot}/usr/lib/pkgconfig:{sysroot}/usr/share/pkgconfig",
            "PKG_CONFIG_PATH": "", "MESON_CROSS": str(cross)}


@stage_function
def lane(params: StageParams) -> StageResult:
    """Cross-build `params.packages` onto a copy of stage 1's sysroot; check what they made."""
    check_names("lane", params.packages, params.relink)
    st = begin("lane", params, after=("stage1",))
    stage1 = st.base / "stage1"
    bindir, sysroot = copy_tree(stage1 / "bin", st.work / "bin"), copy_tree(stage1 / "sysroot", st.work / "sysroot")
    env = {**cross_env(bindir, params.target, params.cflags, st.seed.clang["triple"]),
           **stage1_env(st.base, st.seed.clang["version"], params.cflags),
           **sysroot_env(sysroot, params.target), "SYSROOT": str(sysroot)}
    ctx = st.context(sysroot, st.seed_sandbox(f"{bindir}:/usr/bin:/bin"), env, sees=[stage1, bindir, sysroot])
    st.build(ctx, params.packages)
    checks = relink(st, ctx, params.relink)
    st.tree_digest()
    checks += verify.check_elf_hygiene("lane", sysroot, extra_forbidden=[str(st.base)])
    checks += verify.check_root_closure("lane", sysroot)
    if params.boot:
        checks += boot_lane(st, params)
    return st.finish(checks)


def boot_lane(st: StageRun, params: StageParams) -> list[CheckRecord]:
    """The lane's builds booted: the work directory's stage 4 root (mini's: busybox, musl and its
    kernel) with each package the lane built (its last pass) merged over it, so that systemd
    boots as PID 1 and the packages' checks run inside the booted system."""
    base = st.base / "stage4" / "root"
    if not base.is_dir():
        raise SerpentError(f"the lane boots its builds on a stage 4 root, and {base} is not one",
                           f"run the mini profile's four stages there first: serpent run --work-dir {st.base}")
    where = st.work / "boot"
    shutil.rmtree(where, ignore_errors=True)
    root = copy_tree(base, where / "root")
    for name in params.packages:
        merge_tree(st.cache.get(st.keys[name])[0], root)
    env = final_compiler(params.compiler).env()  # the base root's compiler, as its stage 4 checks have it
    booted, records, rows = boot.boot_root(st.seed, root, st.recipe_checks(params.packages), where, st.logs / "boot",
                                           stage="lane", timeout=params.boot_timeout, env=env)
    boot.write_tables(st.run, booted, rows)
    shutil.rmtree(root)
    return records
