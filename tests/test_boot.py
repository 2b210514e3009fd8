"""The mini system boots: its kernel, its root as a disk image, QEMU, the checks inside."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from serpentlib.build.profile import load_profile
from serpentlib.build.phases import PackageBuild, StageContext
from serpentlib.build.recipes import load_recipe
from serpentlib.build.seed import ensure
from serpentlib.build.sources import SourceStore
from serpentlib.errors import BuildError
from serpentlib.paths import PROJECT
from serpentlib.stages import boot

pytestmark = pytest.mark.build
PROFILE = load_profile("mini")


@pytest.fixture(scope="module")
def stage4(mini_run):
    proc, run_dir, work_dir = mini_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir, work_dir, ensure(PROFILE.common["seed"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def qemus_with(path: Path) -> list[str]:
    """The QEMU processes whose command line names `path`."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "qemu-system" in line and str(path) in line]


def test_stage4_boots_its_root_with_its_kernel_and_the_checks_run_inside(stage4):
    run_dir, work_dir, _ = stage4
    checks = pd.read_csv(run_dir / "checks.csv", keep_default_na=False)
    booted = checks[checks["check"] == "boots"]
    assert list(booted["outcome"]) == ["pass"], booted
    inside = checks[checks["check"] == "runs-in-boot"]
    in_chroot = checks[(checks["stage"] == "stage4") & (checks["check"] == "runs-in-root")]
    # Every recipe's check ran in the booted system, as it did in the chroot (less the zlib program).
    assert set(inside["subject"]) == set(in_chroot["subject"]) - {s for s in in_chroot["subject"] if "stands alone" in s}
    assert len(inside) >= 15 and (inside["outcome"] == "pass").all(), inside
    console = (run_dir / "logs" / "stage4" / "boot" / "console.log").read_text()
    assert "Linux version 6.1.176" in console and "Run /sbin/init as init process" in console
    assert "VFS: Mounted root (ext4 filesystem)" in console
    events = pd.read_csv(run_dir / "boot.csv")
    assert {"kernel started", "root mounted", "init started", "checks begin", "checks end"} <= set(events["event"])
    kernel = work_dir / "stage4" / "root" / "usr" / "lib" / "modules" / "6.1.176"
    assert (kernel / "vmlinuz").read_bytes()[0x202:0x206] == b"HdrS"
    assert "CONFIG_VIRTIO_BLK=y" in (kernel / "config").read_text().splitlines()
    assert not qemus_with(work_dir)


def test_two_images_of_the_root_are_the_same_bytes_and_hold_its_files_as_roots(stage4, tmp_path):
    """`serpent image` twice: once of the root, once of a copy made in another order, elsewhere."""
    _, work_dir, seed = stage4
    root = work_dir / "stage4" / "root"
    copy = tmp_path / "copy"
    copy.mkdir()
    for child in sorted(root.iterdir(), reverse=True):
        shutil.copytree(child, copy / child.name, symlinks=True) if child.is_dir() and not child.is_symlink() \
            else shutil.copy2(child, copy / child.name, follow_symlinks=False)
    shutil.copystat(root, copy)
    first = subprocess.run([sys.executable, "-m", "serpentlib.cli", "image", "--work-dir", str(work_dir),
                            "-o", str(tmp_path / "a.img")], capture_output=True, text=True, cwd=PROJECT)
    assert first.returncode == 0, first.stderr
    assert f"{tmp_path / 'a.img'}: " in first.stdout
    boot.make_image(seed, copy, tmp_path / "b.img", tmp_path / "b.log")
    assert sha256(tmp_path / "a.img") == sha256(tmp_path / "b.img")
    shown = seed.sandbox(visible=[tmp_path]).run(["debugfs", "-R", "stat /usr/bin/busybox", str(tmp_path / "a.img")],
                                                  cwd="/", log=tmp_path / "debugfs.log")
    assert shown.exit_code == 0
    text = (tmp_path / "debugfs.log").read_text()
    assert "User:     0   Group:     0" in text, text
    for field in ("ctime", "atime", "mtime", "crtime"):  # SOURCE_DATE_EPOCH, not when the image was made
        assert "Wed Jan  1 00:00:00 2020" in text.split(f"{field}:")[1].splitlines()[0], text
    assert not list(tmp_path.glob("*.tree-*")), "the staged tree is removed"


def test_serpent_boot_runs_the_checks_and_says_what_each_printed(stage4, tmp_path):
    _, work_dir, _ = stage4
    done = subprocess.run([sys.executable, "-m", "serpentlib.cli", "boot", "--work-dir", str(work_dir), "--accel", "tcg",
                           "--output", str(tmp_path / "boot")], capture_output=True, text=True, cwd=PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass   boots         qemu: QEMU (tcg: asked for tcg) booted" in done.stdout
    assert "runs-in-boot  busybox: busybox sha256sum /dev/null | cut -c1-16: exit 0; printed 'e3b0c44298fc1c14'" \
        in done.stdout


def test_a_broken_init_fails_the_boot_with_the_consoles_last_lines(stage4, tmp_path):
    """No busybox and no shell: /sbin/init leads nowhere, nor does the kernel's last resort, /bin/sh;
    the kernel panics and QEMU exits."""
    _, work_dir, seed = stage4
    root = tmp_path / "root"
    shutil.copytree(work_dir / "stage4" / "root", root, symlinks=True)
    for program in ("busybox", "sh"):
        (root / "usr" / "bin" / program).unlink()
    booted, records, _ = boot.boot_root(seed, root, {"busybox: true": ("true", "")}, tmp_path / "out",
                                        tmp_path / "logs", accel="tcg", timeout=120)
    assert not booted.timed_out
    assert [(r.check, r.outcome) for r in records] == [("boots", "fail"), ("runs-in-boot", "fail")]
    assert "before the checks ended" in records[0].detail and "Kernel panic" in records[0].detail, records[0].detail


def test_a_hung_boot_fails_at_the_timeout_and_qemu_is_gone(stage4, tmp_path):
    _, work_dir, seed = stage4
    booted, records, _ = boot.boot_root(seed, work_dir / "stage4" / "root", {"hangs: sleep": ("sleep 600", "")},
                                        tmp_path / "out", tmp_path / "logs", accel="tcg", timeout=25)
    assert booted.timed_out
    assert records[0].outcome == "fail" and "stopped at the timeout" in records[0].detail
    assert "checks begin" in records[0].detail, "the console's last lines are in the record"
    assert not qemus_with(tmp_path)


def test_an_option_kconfig_drops_fails_the_kernel_build_and_names_it(stage4, tmp_path):
    """A fragment line whose dependency is missing (virtio-net without network devices) does not
    survive kconfig: the configure phase fails, naming it."""
    _, _, seed = stage4
    recipe_dir = tmp_path / "linux"
    shutil.copytree(PROJECT / "recipes" / "linux", recipe_dir)
    text = (recipe_dir / "recipe.yaml").read_text()
    merge = "    eval $KMAKE tinyconfig serpent.config >/dev/null\n"
    assert merge in text
    (recipe_dir / "recipe.yaml").write_text(text.replace(
        merge, "    echo CONFIG_VIRTIO_NET=y >> \"$SRC/kernel/configs/serpent.config\"\n" + merge))
    records = []
    root = tmp_path / "root"
    root.mkdir()
    host = seed.sandbox(path="/usr/bin:/bin")
    ctx = StageContext(stage="stage3", work=tmp_path / "work", install_root=root, store=SourceStore(None, seed=seed),
                       sandbox=host, logs=tmp_path / "logs", host_sandbox=host, on_record=records.append,
                       jobs=os.cpu_count() or 1)
    with pytest.raises(BuildError):
        PackageBuild(load_recipe(recipe_dir / "recipe.yaml"), ctx).run()
    assert [r.phase for r in records][-1] == "configure" and records[-1].exit_code == 1
    log = (tmp_path / "logs" / "linux" / "configure.log").read_text()
    assert "did not survive kconfig: CONFIG_VIRTIO_NET=y" in log, log[-1000:]


def test_systemd_s_own_account_of_its_boot_is_read_into_records(tmp_path):
    """What the unit prints after the checks (the state, the bus, time, blame, the failed units
    with their journals), as systemd 252 printed it in a degraded boot, becomes records that fail
    where the boot did, and the units' start times."""
    import base64

    def line(name, text):
        return f"{boot.REPORT} {name} {base64.b64encode(text.encode()).decode()}"
    console = [
        "[    1.402308] systemd[1]: systemd 252.39 running in system mode (-PAM +BLKID)",
        line("state", "degraded\n"), f"{boot.BEGIN} 10.90", f"{boot.CHECK} 0 0 " + base64.b64encode(b"252").decode(),
        f"{boot.CHECK} 1 0 aGVsbG8[0;32mOK",  # a check's line that systemd's status output cut
        line("bus", ":1.0 1 systemd root :1.0 init.scope - -\norg.freedesktop.DBus 1 systemd root - init.scope - -\n"),
        line("time", "Startup finished in 1.311s (kernel) + 1min 9.525s (userspace) = 1min 10.836s \n"),
        line("blame", "4.639s systemd-hwdb-update.service\n 448ms dbus.service\n1min 2.5s slow.service\n"),
        line("journal", "[    2.938920] systemd[1]: Started Journal Service.\n"),
        line("failed", "systemd-sysusers.service loaded failed failed Create System Users\n"),
        line("failed-logs", "== systemd-sysusers.service\nFailed to take /etc/passwd lock: Permission denied\n"),
        f"{boot.END} 17.49"]
    booted = boot.Boot("tcg", "", 0, 18.7, False, tmp_path / "console.log", console, init="systemd")
    commands = {"systemd: udevadm --version": ("udevadm --version", "252"), "cut: echo hello": ("echo hello", "hello")}
    judged = boot.judge("lane", booted, commands)
    records = {r.check: r for r in judged}
    cut = next(r for r in judged if r.subject == "cut: echo hello")
    assert not cut.passed and "not base64 on the console" in cut.detail
    assert records["boots"].passed and "systemd as PID 1" in records["boots"].detail
    assert not records["boot-state"].passed and "degraded" in records["boot-state"].detail
    assert "failed units: systemd-sysusers.service" in records["boot-state"].detail
    assert records["system-bus"].passed
    assert not records["journal"].passed, "the journal does not hold the boot's end"
    failed = records["unit-failed"]
    assert failed.subject == "systemd-sysusers.service" and not failed.passed
    assert "Failed to take /etc/passwd lock: Permission denied" in failed.detail
    assert next(r for r in judged if r.subject == "systemd: udevadm --version").passed
    units = {u["unit"]: u["seconds"] for u in booted.units()}
    assert units == {"systemd-hwdb-update.service": 4.639, "dbus.service": 0.448, "slow.service": 62.5}
    events = {e["event"]: e["kernel_s"] for e in boot.events(booted)}
    assert events["userspace done (systemd-analyze)"] == pytest.approx(70.836)
    assert events["systemd started"] == pytest.approx(1.402308)
