"""Stage 3: native builds inside a chroot, with stage 2 bind-mounted read-only at /serpent.

As in the seed: the root starts empty; the intermediate musl is built on the host by the
stage1 toolchain and installed into it; then every package is extracted and patched on the
host and configured, built and installed inside the chroot, by /serpent/usr/bin/bash with
/usr/bin ahead of /serpent/usr/bin on PATH, so each install replaces a /serpent tool.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from .. import flags as tuning
from .. import verify
from ..errors import SerpentError
from ..metrics import CheckRecord, expected_failure
from ..recipes import Recipe, load_recipes
from ..sandbox import Bind, Sandbox
from ..sources import SourceStore, extract
from . import llvm_checks
from .common import SOURCE_DATE_EPOCH, StageResult, StageRun, begin, stage_function
from .stage2 import cross_env, make_root_layout, write_base_files, recipe_checks, root_sandbox, toolchain

log = logging.getLogger(__name__)

CHROOT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/serpent/usr/bin"
SERPENT_SHELL = "/serpent/usr/bin/bash"


def chroot_sandbox(root: Path, builds: Path, serpent: Path | None, env: dict[str, str]) -> Sandbox:
    """The stage3 chroot: /serpent (read-only) when given, the build trees at /build."""
    binds = [Bind(builds, "/build", readonly=False)]
    if serpent is not None:
        binds.insert(0, Bind(serpent, "/serpent", readonly=True))
        return Sandbox(root=root, binds=binds, path=CHROOT_PATH, shell=SERPENT_SHELL, env=env)
    return Sandbox(root=root, binds=binds, path="/usr/bin:/bin:/usr/sbin:/sbin", shell="/usr/bin/bash", env=env)


COMPILERS = ("tcc", "clang")
# Until stage 3 builds its own LLVM, these lead to /serpent's, as /usr/bin/sh leads to its dash
# (the seed's way): recipes that name /usr/bin/clang (the LLVM runtimes) build in the chroot too.
SERPENT_LINKS = {"tcc": ["dash:sh"], "clang": ["dash:sh", "clang", "clang++", "llvm-ar", "llvm-ranlib", "llvm-nm"]}


# What a build with -g (Python's, ninja's) records of /serpent's headers names them where the
# root has its own: /usr/include/c++/v1, /usr/lib/clang/14.0.6/include.
SERPENT_MAP = "-ffile-prefix-map=/serpent/=/"


def native_env(compiler: str = "tcc", serpent: bool = False) -> dict[str, str]:
    """The chroot's build environment for its compiler; `serpent`: while /serpent is mounted.

    tcc: its runtime (libtcc1.a, its headers) is under /serpent until stage 3 installs its own,
    hence -B; it takes no optimisation flags worth passing. clang: /serpent's LLVM programs
    need /serpent's libc++ until the root has its own, as the seed's LD_LIBRARY_PATH did."""
    common = {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "KCONFIG_NOTIMESTAMP": "1", "HOME": "/root", "TMPDIR": "/tmp"}
    if compiler == "clang":
        env = {"CC": "clang", "CXX": "clang++", "AR": "llvm-ar", "RANLIB": "llvm-ranlib", "NM": "llvm-nm",
               "STRIP": "llvm-strip", "OBJCOPY": "llvm-objcopy", "READELF": "llvm-readelf",
               "CFLAGS": f"-O2 -pipe {SERPENT_MAP}", "CXXFLAGS": f"-O2 -pipe {SERPENT_MAP}"}
        if serpent:
            env["LD_LIBRARY_PATH"] = "/serpent/usr/lib"
        return {**env, **common}
    if compiler != "tcc":
        raise SerpentError(f"stage3: unknown compiler {compiler!r}", f"use one of {', '.join(COMPILERS)}")
    cc = "tcc -B/serpent/usr/lib/tcc" if serpent else "tcc"
    # CFLAGS without -g: tcc's debug info would name /serpent's headers in every binary.
    return {"CC": cc, "AR": "tcc -ar", "LD": "tcc", "CFLAGS": "-O2", **common}


def link_serpent_tools(root: Path, compiler: str) -> None:
    for item in SERPENT_LINKS[compiler]:
        tool, _, name = item.partition(":")
        os.symlink(f"/serpent/usr/bin/{tool}", root / "usr" / "bin" / (name or tool))


FIXED_POINT = """set -e
cd /build/fixpoint/src
./configure --prefix=/usr --cc=tcc --ar="tcc -ar" {paths} >/dev/null
make -s tcc
cp tcc /build/fixpoint/tcc-1
make -s clean
./configure --prefix=/usr --cc=/build/fixpoint/tcc-1 --ar="tcc -ar" {paths} >/dev/null
make -s tcc
cp tcc /build/fixpoint/tcc-2
make -s  # the rest (libtcc1.a, ...), for the test suite
"""


def check_fixed_point(stage: str, root: Path, builds: Path, tcc: Recipe, store: SourceStore,
                      logs: Path) -> list[CheckRecord]:
    """The installed tcc builds tcc-1; tcc-1 builds tcc-2; tcc-1 and tcc-2 must be byte-identical.
    Configured as the recipe configures tcc, so tcc-1 can be compared with /usr/bin/tcc too."""
    where = builds / "fixpoint"
    shutil.rmtree(where, ignore_errors=True)
    source = tcc.sources[0]
    extract(store.fetch(source).path, where / "src", source.extract, source.strip)
    script = FIXED_POINT.format(paths=tcc.build_for(stage).env["TCC_PATHS"])
    sandbox = chroot_sandbox(root, builds, None, native_env("tcc"))
    rec = sandbox.run(script, cwd="/", log=logs / "fixed-point.log", stage=stage, phase="check")
    if rec.exit_code != 0:
        return [CheckRecord(stage, "fixed-point", "tcc", False, f"exit {rec.exit_code}; see {rec.log}")]
    one, two = (where / "tcc-1").read_bytes(), (where / "tcc-2").read_bytes()
    same_as_installed = one == (root / "usr" / "bin" / "tcc").read_bytes()
    records = [CheckRecord(stage, "fixed-point", "tcc", one == two,
                           f"tcc-1 {'==' if one == two else '!='} tcc-2 ({len(one)} bytes); "
                           f"tcc-1 {'==' if same_as_installed else '!='} /usr/bin/tcc")]
    records += check_tcc_suite(stage, sandbox, where / "src", logs)
    shutil.rmtree(where, ignore_errors=True)
    return records


def tcc_test_targets(source: Path) -> list[str]:
    """The TESTS list of tcc's tests/Makefile, as upstream wrote it."""
    text = (source / "tests" / "Makefile").read_text()
    block = re.search(r"^TESTS = \\\n((?:[ \t]+\S+.*\n)+)", text, re.MULTILINE)
    return re.findall(r"[\w.-]+", block.group(1).replace("\\", " ")) if block else []


# Upstream tests that cannot pass in this configuration, each with its reason. They are run and
# recorded all the same; one that starts to pass is reported as such.
TCC_EXPECTED_FAILURES = {
    "tests2/114_bound_signal": "needs tcc's bounds checker, which --config-musl does not build",
    "tests2/115_bound_setjmp": "needs tcc's bounds checker, which --config-musl does not build",
    "tests2/116_bound_setjmp2": "needs tcc's bounds checker, which --config-musl does not build",
    "tests2/117_gcc_test": "runs tcc -b (the bounds checker), which --config-musl does not build",
    # Not a tcc bug: tests/test_bootstrap.py runs the test as written (SIGSEGV) and realigned (passes).
    "asm-c-connect-test": "the test's asm trampolines (`x1: call x1_c; ret` in asm-c-connect-1.c, `callx4: call x4; "
                          "ret` in asm-c-connect-2.c) enter C functions with the stack 8 bytes off the 16-byte "
                          "alignment the x86-64 ABI requires; those call printf, and musl's vfprintf (built by "
                          "clang -O2) faults on a movaps to its stack frame, where glibc's printf happens not to. "
                          "With both trampolines realigned, tcc's program prints the expected line",
}


def suite_record(stage: str, name: str, ok: bool, detail: str) -> CheckRecord:
    """One target or test of tcc's suite: xfail or xpass when it is expected to fail."""
    record = CheckRecord(stage, "tcc-test-suite", name, ok, detail)
    expected = TCC_EXPECTED_FAILURES.get(name)
    return expected_failure(record, expected) if expected else record


def check_tcc_suite(stage: str, sandbox: Sandbox, source: Path, logs: Path) -> list[CheckRecord]:
    """tcc's own test suite, run in the chroot by the tcc built there: one record per target, and
    one per test of tests2 (the C test collection). `make -r`: the suite relies on no implicit rule."""
    records = []
    for target in tcc_test_targets(source):
        log = logs / f"tcc-test-{target}.log"
        rec = sandbox.run(f"make -r -C tests -k {target}", cwd="/build/fixpoint/src", log=log, stage=stage,
                          phase="check", timeout=600)
        if target == "tests2-dir":
            text = log.read_text(errors="replace")
            failed = set(re.findall(r"\*\*\* \[Makefile:\d+: (\S+)\.test\] Error", text))
            for test in re.findall(r"^Test: (\S+?)\.\.\.", text, re.MULTILINE):
                records.append(suite_record(stage, f"tests2/{test}", test not in failed, f"log {log}"))
            if rec.exit_code == 0 or failed:
                continue
        records.append(suite_record(stage, target, rec.exit_code == 0,
                                     f"exit {rec.exit_code} in {rec.wall_s:.1f} s; log {log}"))
    if not records:
        records.append(CheckRecord(stage, "tcc-test-suite", "tests/Makefile", False, "no TESTS list found"))
    return records


def probe_flags(st: StageRun, serpent: Path, flags: list[tuning.Flag],
                compiler: str = "tcc") -> tuple[str, list[tuning.FlagResult]]:
    """Try each tuning flag with stage 2's compiler (the one stage 3 starts with, and the
    version it ends with) in stage 2's root; saved to <work>/stage3/flags.json for stage 4."""
    where = st.work / "flag-probe"
    where.mkdir()
    (where / "probe.c").write_text(tuning.PROBE_C)
    version = "tcc -v" if compiler == "tcc" else "clang --version | head -1"
    script = tuning.probe_script(flags, compiler, "/probe") + f"{version} > version.txt 2>&1\n"
    sandbox = root_sandbox(serpent, shell="/usr/bin/bash", binds=[Bind(where, "/probe", readonly=False)])
    rec = sandbox.run(script, cwd="/", log=st.logs / "flag-probe.log", stage="stage3", phase="probe")
    if rec.exit_code != 0:
        raise SerpentError(f"stage3: the flag probe failed (exit {rec.exit_code})", f"see {rec.log}")
    compiler = (where / "version.txt").read_text().strip()
    results = tuning.judge(flags, where)
    tuning.save(results, compiler, st.work / "flags.json")
    shutil.rmtree(where)
    return compiler, results


@stage_function
def stage3(*, target: str, packages: list[str], cflags: str = "-O2 -pipe", flags: dict | None = None,
           compiler: str = "tcc", fixpoint: bool = True, lit_suites: list[str] | None = None,
           recheck: bool = False, **params) -> StageResult:
    """Build the profile's set natively in the stage3 chroot, then verify the final compiler.
    `cflags` applies to what is built on the host (the intermediate musl); `flags` (tuning
    groups) to what the chroot's `compiler` (tcc or clang) builds, each flag probed first.
    `fixpoint`: the final compiler rebuilds itself and must give the same bytes; `lit_suites`:
    LLVM's own test suites run in the chroot (clang only)."""
    flag_list = tuning.parse_flags(flags or {})
    st = begin("stage3", after=("stage1", "stage2"), **params)
    bindir = toolchain(st.base)
    serpent = st.base / "stage2" / "root"
    root, builds = st.work / "root", st.work / "build"
    make_root_layout(root)
    write_base_files(root)
    # As in the seed: until stage3 builds its own shell, /usr/bin/sh is stage2's dash.
    link_serpent_tools(root, compiler)
    builds.mkdir(parents=True, exist_ok=True)
    env = native_env(compiler, serpent=True)
    _compiler, results = probe_flags(st, serpent, flag_list, compiler)
    if flag_list:
        env.update(tuning.build_env(results, SERPENT_MAP if compiler == "clang" else ""))
    host_env = {**cross_env(bindir, target, cflags, st.seed.clang["triple"]),
                "SYSROOT": str(st.base / "stage1" / "sysroot")}
    env["TARGET"] = target
    ctx = st.context(root, chroot_sandbox(root, builds, serpent, env), env,
                     inside=lambda p: "/build/" + str(Path(p).relative_to(builds)),
                     host_sandbox=st.seed_sandbox(f"{bindir}:/usr/bin:/bin"), host_env=host_env,
                     # The LLVM tree stays: the fixpoint, now or in a later run, compares its objects.
                     keep_trees=frozenset({"llvm"} if compiler == "clang" else ()))
    st.build(ctx, packages, chain=True)
    checks = st.cached_checks(recheck)
    if checks is None:
        checks = verify_stage3(st, root, builds, serpent, packages, compiler, fixpoint, lit_suites or [], env)
    return st.finish(checks)


def verify_stage3(st: StageRun, root: Path, builds: Path, serpent: Path, packages: list[str], compiler: str = "tcc",
                  fixpoint: bool = True, lit_suites: list[str] | None = None,
                  build_env: dict[str, str] | None = None) -> list[CheckRecord]:
    """The root's ELF files, what replaced /serpent, the tools on PATH, then without /serpent:
    the recipes' checks, the final compiler's own checks, its fixed point and its test suite."""
    logs = st.logs / "checks"
    env = native_env(compiler, serpent=True)
    checks = verify.check_root_closure("stage3", root)
    checks += verify.check_replaced("stage3", serpent, root)
    checks += verify.check_elf_hygiene("stage3", root, extra_forbidden=[str(st.base), "/serpent"])
    tools = ["make", "bash", compiler, "sh"] + (["clang++", "ld.lld", "cmake", "ninja", "python3"] if compiler == "clang" else [])
    checks += verify.check_in_root("stage3", chroot_sandbox(root, builds, serpent, env), {
        "tools resolve to /usr/bin": (f"for t in {' '.join(tools)}; do command -v $t; done",
                                      "\n".join(f"/usr/bin/{t}" for t in tools)),
    }, logs)
    # Without /serpent from here on: the root must stand alone.
    alone = chroot_sandbox(root, builds, None, native_env(compiler))
    checks += verify.check_in_root("stage3", alone, recipe_checks(st.recipes, packages), logs)
    if compiler == "tcc":
        if fixpoint:
            checks += check_fixed_point("stage3", root, builds, load_recipes(st.recipes, ["tcc"])["tcc"], st.store, logs)
        return checks
    checks += llvm_checks.check_programs("stage3", root, builds, alone, logs)
    if not fixpoint and not lit_suites:
        return checks
    # The rebuild is the fixpoint's and lit's tree both; it resumes like a package build.
    llvm = load_recipes(st.recipes, ["llvm"])["llvm"]
    # As the packages were built, tuning flags included, but with nothing from /serpent.
    env = {k: v for k, v in (build_env or native_env(compiler)).items() if k != "LD_LIBRARY_PATH"}
    found, build = llvm_checks.check_fixed_point("stage3", root, serpent, builds, llvm, alone, env, st.store, logs,
                                                 key="fixpoint-" + st.keys["llvm"],
                                                 on_record=lambda rec: (st.recorder.add(rec), st.result.phases.append(rec)),
                                                 host_sandbox=st.seed_sandbox())
    found = found if fixpoint else []
    for record in found[:1]:
        log.info("stage3 fixpoint: %s: %s", record.outcome, record.detail[:300])
    found += llvm_checks.check_lit("stage3", build, alone, lit_suites or [], st.jobs, logs)
    checks += found
    # The rebuild's tree (2 GB) goes once its records pass; after a failure it stays, so that the
    # next run resumes it (ninja has nothing left to do) instead of building LLVM again for hours.
    if build is not None and all(c.passed for c in found):
        shutil.rmtree(build.root, ignore_errors=True)
    return checks
