"""tcc as stage 3's final compiler (the mini profile): its environment in the chroot, and its
checks: a three-step self-build to a byte fixpoint, and its own test suite, one record per test."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..build.archive import extract
from ..build.sandbox import Sandbox
from ..rows import CheckRecord, Step, expected_failure
from .common import StageRun, native_common
from .layout import Chroot


class Tcc:
    """tcc built natively: the mini profile's final compiler."""

    name = "tcc"
    serpent_links = ("dash:sh",)  # until stage 3 builds its own shell, /usr/bin/sh is stage 2's dash
    tools = ()
    prefix_map = ""
    keep_trees: frozenset[str] = frozenset()
    version_command = "tcc -v"

    def env(self, serpent: bool = False) -> dict[str, str]:
        """tcc's runtime (libtcc1.a, its headers) is under /serpent until stage 3 installs its own,
        hence -B (`serpent`: while /serpent is mounted); it takes no optimisation flags worth passing."""
        cc = "tcc -B/serpent/usr/lib/tcc" if serpent else "tcc"
        # CFLAGS without -g: tcc's debug info would name /serpent's headers in every binary.
        return {"CC": cc, "AR": "tcc -ar", "LD": "tcc", "CFLAGS": "-O2", **native_common()}

    def checks(self, st: StageRun, chroot: Chroot, alone: Sandbox, build_env: dict[str, str]) -> list[CheckRecord]:
        return check_fixed_point(st, chroot, alone) if st.params.fixpoint else []


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


def check_fixed_point(st: StageRun, chroot: Chroot, alone: Sandbox) -> list[CheckRecord]:
    """The installed tcc builds tcc-1; tcc-1 builds tcc-2; tcc-1 and tcc-2 must be byte-identical.
    Configured as the recipe configures tcc, so tcc-1 can be compared with /usr/bin/tcc too."""
    stage, root, logs, tcc = st.name, chroot.root, st.logs / "checks", st.recipes(["tcc"])["tcc"]
    where = chroot.builds / "fixpoint"
    shutil.rmtree(where, ignore_errors=True)
    source = tcc.sources[0]
    extract(st.store.fetch(source).path, where / "src", source.extract, source.strip)
    script = FIXED_POINT.format(paths=tcc.build_for(stage).env["TCC_PATHS"])
    rec = alone.run(script, cwd="/", log=logs / "fixed-point.log", step=Step(stage, phase="check"))
    if rec.exit_code != 0:
        return [CheckRecord(stage, "fixed-point", "tcc", False, f"exit {rec.exit_code}; see {rec.log}")]
    one, two = (where / "tcc-1").read_bytes(), (where / "tcc-2").read_bytes()
    same_as_installed = one == (root / "usr" / "bin" / "tcc").read_bytes()
    records = [CheckRecord(stage, "fixed-point", "tcc", one == two,
                           f"tcc-1 {'==' if one == two else '!='} tcc-2 ({len(one)} bytes); "
                           f"tcc-1 {'==' if same_as_installed else '!='} /usr/bin/tcc")]
    records += check_tcc_suite(stage, alone, where / "src", logs)
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
        rec = sandbox.run(f"make -r -C tests -k {target}", cwd="/build/fixpoint/src", log=log,
                          step=Step(stage, phase="check"), timeout=600)
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
