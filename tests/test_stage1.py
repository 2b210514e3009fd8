"""One real stage1 build through papermill, as `serpent run` does it (minutes)."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from serpentlib.profile import PROJECT, load_profile

pytestmark = pytest.mark.build


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox's namespaces and chroots")
    base = tmp_path_factory.mktemp("stage1")
    run_dir, work_dir = base / "run", base / "work"
    proc = subprocess.run([sys.executable, "-m", "serpentlib.cli", "run", "--profile", "mini", "--stage", "1",
                           "--run-dir", str(run_dir), "--work-dir", str(work_dir), "-q"],
                          capture_output=True, text=True, cwd=PROJECT)
    return proc, run_dir, work_dir


def test_run_succeeds(stage1_run):
    proc, run_dir, _ = stage1_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["stages"] == {"1": "passed"}


def test_every_package_built_every_phase_recorded(stage1_run):
    _, run_dir, _ = stage1_run
    phases = pd.read_csv(run_dir / "phases.csv")
    wanted = load_profile("mini").parameters(1)["packages"]
    assert list(dict.fromkeys(phases["package"])) == wanted
    assert (phases["exit_code"] == 0).all()
    for package in wanted:
        done = set(phases[phases["package"] == package]["phase"])
        assert {"fetch", "extract", "install", "merge"} <= done
    assert (phases["wall_s"] >= 0).all() and phases["max_rss_kb"].max() > 0
    sizes = pd.read_csv(run_dir / "sizes.csv")
    assert list(sizes["package"]) == wanted and (sizes["installed_bytes"] > 0).all()


def test_all_checks_pass(stage1_run):
    _, run_dir, _ = stage1_run
    checks = pd.read_csv(run_dir / "checks.csv")
    failed = checks[~checks["passed"]]
    assert failed.empty, failed.to_string()
    runs = set(checks[checks["check"] == "runs"]["subject"])
    assert runs == {"hello-c-dynamic", "hello-c-static", "cxx-eh-thread-dynamic", "cxx-eh-thread-static"}
    assert (checks["check"] == "elf-clean").sum() >= 5  # libc.so, libc++.so, libunwind.so, ... and the programs


def test_sysroot_and_wrappers(stage1_run):
    _, _, work_dir = stage1_run
    sysroot, bindir = work_dir / "stage1" / "sysroot", work_dir / "stage1" / "bin"
    for lib in ("usr/lib/libc.so", "usr/lib/libc++.so.1", "usr/lib/libc++abi.so.1", "usr/lib/libunwind.so.1",
                "usr/include/linux/version.h"):
        assert (sysroot / lib).exists(), lib
    assert (sysroot / "lib" / "ld-musl-x86_64.so.1").readlink().as_posix() == "/usr/lib/libc.so"
    for tool in ("clang", "clang++"):
        assert (bindir / f"x86_64-serpent-linux-musl-{tool}").stat().st_mode & 0o111


def test_executed_notebook_has_no_error_and_shows_plots(stage1_run):
    _, run_dir, _ = stage1_run
    nb = json.loads((run_dir / "stage1-toolchain.ipynb").read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3


def test_no_mount_is_left(stage1_run):
    _, run_dir, work_dir = stage1_run
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    assert str(work_dir) not in mounts and str(run_dir) not in mounts
