"""The lane: systemd, udev and dbus cross-built against musl with libwildebeest by stage 1's
toolchain, in minutes (the suite's mini run gives stage 1); and its failure when libwildebeest
loses a part systemd needs."""

import shutil

import pandas as pd
import pytest

from serpentlib.elf import MUSL_INTERP, elf_info

from .conftest import ROOT, serpent

# What slim keeps, and some of what it leaves out (each a daemon or tool with its own library needs).
KEPT = ["usr/lib/systemd/systemd", "usr/lib/systemd/systemd-journald", "usr/lib/systemd/systemd-udevd",
        "usr/bin/systemctl", "usr/bin/journalctl", "usr/bin/udevadm", "usr/bin/systemd-analyze",
        "usr/bin/systemd-tmpfiles", "usr/bin/systemd-sysusers", "usr/lib/libsystemd.so.0", "usr/lib/libudev.so.1",
        "usr/lib/systemd/libsystemd-shared-252.so", "usr/bin/dbus-daemon", "usr/lib/libdbus-1.so.3",
        "usr/lib/libmount.so.1", "usr/lib/libcap.so.2", "usr/lib/libexpat.so.1"]
LEFT_OUT = ["usr/lib/systemd/systemd-networkd", "usr/lib/systemd/systemd-logind", "usr/lib/systemd/systemd-resolved",
            "usr/bin/homectl", "usr/lib/systemd/systemd-timesyncd", "usr/lib/libnss_systemd.so.2"]


@pytest.fixture(scope="module")
def lane_work(mini_run, tmp_path_factory):
    """A work directory holding a copy of the mini run's stage 1 (the lane's own cache fills it)."""
    proc, _run_dir, work_dir = mini_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    work = tmp_path_factory.mktemp("lane") / "work"
    shutil.copytree(work_dir / "stage1", work / "stage1", symlinks=True)
    return work


def test_the_lane_builds_slim_systemd_and_dbus_against_musl(lane_work, tmp_path):
    run = tmp_path / "run"
    proc = serpent("lane", "--work-dir", str(lane_work), "--run-dir", str(run), db=tmp_path / "m.sqlite")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sysroot = lane_work / "lane" / "sysroot"
    missing = [f for f in KEPT if not (sysroot / f).exists()]
    assert not missing, missing
    present = [f for f in LEFT_OUT if (sysroot / f).exists()]
    assert not present, present
    # musl's, linked to what systemd made: dbus-daemon uses systemd's activation through libsystemd.
    daemon = elf_info(sysroot / "usr/bin/dbus-daemon")
    assert daemon.interpreter == MUSL_INTERP and "libsystemd.so.0" in daemon.needed, daemon
    pid1 = elf_info(sysroot / "usr/lib/systemd/systemd")
    assert pid1.interpreter == MUSL_INTERP and "libsystemd-shared-252.so" in pid1.needed, pid1
    checks = pd.read_csv(run / "checks.csv")
    assert len(checks) > 100 and checks["outcome"].eq("pass").all(), checks[checks["outcome"] != "pass"]
    phases = pd.read_csv(run / "phases.csv")
    assert {"libcap", "util-linux", "libwildebeest", "expat", "systemd", "dbus"} <= set(phases["package"])
    # The relink: each second pass a build of its own, replacing the first with nothing left behind;
    # util-linux's programs now use libsystemd and libudev, which its first pass could not see.
    assert {"util-linux-relink", "systemd-relink", "dbus-relink"} <= set(phases["package"])
    relinked = checks[checks["check"] == "relink"].set_index("subject")["detail"]
    assert sorted(relinked.index) == ["dbus", "systemd", "util-linux"]
    assert "added ELF files: " in relinked["util-linux"] and "usr/bin/lsblk" in relinked["util-linux"]
    assert "libudev.so.1" in elf_info(sysroot / "usr/bin/lsblk").needed
    assert "libsystemd.so.0" in elf_info(sysroot / "usr/bin/logger").needed


def test_the_lane_fails_when_libwildebeest_loses_parse_printf_format(lane_work, tmp_path):
    """systemd's log code asks parse_printf_format (<printf.h>), which only libwildebeest gives musl."""
    recipes = shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    src = recipes / "libwildebeest" / "src"
    (src / "include" / "printf.h").unlink()
    makefile = src / "Makefile"
    makefile.write_text(makefile.read_text().replace(" include/printf.h", "").replace(" printf.o", "")
                        .replace(" tests/printf-test", ""))
    proc = serpent("lane", "--work-dir", str(lane_work), "--run-dir", str(tmp_path / "run"),
                   "--recipes-dir", str(recipes), "libcap", "util-linux", "libwildebeest", "systemd",
                   db=tmp_path / "m.sqlite")
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-3000:]
    assert "systemd failed in build" in said, said[-3000:]
    log = (tmp_path / "run" / "logs" / "lane" / "systemd" / "build.log").read_text(errors="replace")
    assert "'printf.h' file not found" in log, log[-3000:]


def test_the_lane_boots_systemd_as_pid_1_on_musl(lane_work, mini_run, tmp_path):
    """The lane's builds over the mini run's stage 4 root, booted by QEMU with its kernel: systemd
    252 on musl is PID 1, its boot ends `running` (journald, udevd and dbus started: their /proc
    writes and user database reads need libwildebeest), and the packages' checks pass inside."""
    _, _, work_dir = mini_run
    stage4 = lane_work / "stage4"
    if not stage4.exists():
        shutil.copytree(work_dir / "stage4" / "root", stage4 / "root", symlinks=True)
    run = tmp_path / "run"
    proc = serpent("lane", "--work-dir", str(lane_work), "--run-dir", str(run), "--boot", db=tmp_path / "m.sqlite")
    checks = pd.read_csv(run / "checks.csv", keep_default_na=False)
    booted = checks[checks["check"].isin(["boots", "boot-state", "system-bus", "journal", "unit-failed", "runs-in-boot"])]
    assert proc.returncode == 0, booted.to_string()[-4000:] + proc.stdout[-2000:]
    said = booted.set_index("check")["detail"]
    assert "systemd as PID 1" in said["boots"] and "running" in said["boot-state"], said.to_dict()
    assert "org.freedesktop.DBus" in said["system-bus"], said.to_dict()
    assert "Startup finished" in said["journal"], said.to_dict()
    assert "unit-failed" not in set(booted["check"])
    inside = booted[booted["check"] == "runs-in-boot"]
    assert len(inside) > 10 and inside["outcome"].eq("pass").all(), inside.to_string()
    assert any(s.startswith("systemd: sysusers") for s in inside["subject"])
    units = pd.read_csv(run / "boot-units.csv")
    assert {"systemd-journald.service", "systemd-udevd.service", "dbus.service"} <= set(units["unit"]), units
    console = (run / "logs" / "lane" / "boot" / "console.log").read_text(errors="replace")
    assert "systemd 252.39 running in system mode" in console
