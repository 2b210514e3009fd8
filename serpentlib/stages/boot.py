"""The boot: the stage 4 root as an ext4 disk image, booted by QEMU with the kernel it packages.

The image is made by the seed's `mke2fs -d` (no loop mount, no root needed) and is reproducible:
a fixed UUID and hash seed, every time SOURCE_DATE_EPOCH. QEMU is the seed's too. A root with
systemd boots it as PID 1, and a unit runs the checks once the boot has finished; otherwise
busybox's init runs them from an inittab entry. Either prints each result on the serial
console, base64 between markers (with systemd, also `systemd-analyze time` and `blame` and the
failed units); then the system reboots and QEMU (`-no-reboot`) exits. The console is captured
to a file and read back into records.
"""

from __future__ import annotations

import base64
import csv
import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..build.cache import stage_marker
from ..build.profile import Profile
from ..build.recipes import load_recipes
from ..build.seed import Seed
from ..build.seed import ensure as ensure_seed
from ..errors import SerpentError
from ..files import copy_tree, walk
from ..rows import CheckRecord, Step
from .common import SOURCE_DATE_EPOCH, recipe_checks
from .compilers import final_compiler

IMAGE_UUID = "5e4fe47a-0b0e-4d2a-9c3f-2020f0000001"  # fixed: two images of one root are the same bytes
MIB = 1 << 20
BEGIN, END, CHECK, REPORT = "serpent-boot: checks begin", "serpent-boot: checks end", "serpent-check", "serpent-report"
KERNEL_GLOB = "usr/lib/modules/*/vmlinuz"
# Mount points a running system needs that a chroot's root does without.
MOUNT_POINTS = ("sys", "run")

INITTAB = """# serpentlib's boot: the checks, then a clean reboot (QEMU runs with -no-reboot, so it exits).
::sysinit:/usr/lib/serpent/boot-checks
::once:/bin/reboot
"""

SYSTEMD = "usr/lib/systemd/systemd"
UNIT = "serpent-boot-checks.service"
# Wanted by the default target from the kernel's command line (systemd.wants=): the root is not
# changed for it. Type=simple, so the boot finishes while the script waits for it to. The serial
# console is the script's: its getty is masked there too (it would hang the script's tty up).
UNIT_TEXT = """[Unit]
Description=serpentlib's boot checks
SuccessAction=reboot
FailureAction=reboot

[Service]
Type=simple
ExecStart=/usr/lib/serpent/boot-checks
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
"""

CHECKS_HEAD = r"""#!/bin/sh
# serpentlib's boot checks: each recipe check runs as in a chroot of the root; its exit status
# and output go to the console as `serpent-check <n> <status> <base64 of the output>`.
export PATH=/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TERM=dumb
check() {{
    printf '%s' "$2" | base64 -d > /tmp/check.sh
    (cd / && sh /tmp/check.sh) > /tmp/check.out 2>&1
    status=$?
    echo "{check} $1 $status $(base64 < /tmp/check.out | tr -d '\n')"
}}
report() {{
    sh -c "$2" > /tmp/report.out 2>&1
    echo "{report} $1 $(base64 < /tmp/report.out | tr -d '\n')"
}}
{start}
echo "{begin} $(cut -d' ' -f1 /proc/uptime)"
"""
# Under busybox's init the script mounts what a system needs; under systemd all is mounted by the
# time the unit starts, and the script waits until the boot has finished (or failed: `degraded`).
START = {"busybox": "mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t tmpfs tmp /tmp\nmount -t tmpfs run /run",
         "systemd": 'report state "systemctl is-system-running --wait"'}
# What systemd says of its boot, printed after the checks; first the system bus's names, which
# starts dbus by its socket.
REPORTS = {"bus": "busctl --system list --no-legend", "time": "systemd-analyze time", "blame": "systemd-analyze blame",
           "journal": "journalctl -b -o short-monotonic --no-pager | grep -m 3 -e 'Startup finished' -e 'Started Journal'",
           "failed": "systemctl list-units --failed --plain --no-legend",
           "failed-logs": "for u in $(systemctl list-units --failed --plain --no-legend | cut -d' ' -f1); do "
                          "echo \"== $u\"; journalctl -b -u \"$u\" -o cat | tail -n 6; done"}


def find_kernel(root: Path) -> Path:
    """The one kernel the root packages (usr/lib/modules/<release>/vmlinuz)."""
    found = sorted(root.glob(KERNEL_GLOB))
    if len(found) != 1:
        raise SerpentError(f"{root} holds {len(found)} kernels ({KERNEL_GLOB}), not one",
                           "add `linux` to stage 3's packages in the profile (params/mini.yaml has it) and run "
                           "stages 3 and 4 again" if not found else "keep one kernel package in stage 3")
    return found[0]


def init_of(root: Path) -> str:
    """The init a root boots with: systemd where it has it, else busybox's."""
    return "systemd" if (root / SYSTEMD).is_file() else "busybox"


def boot_files(commands: dict[str, tuple[str, str]], env: dict[str, str] | None = None,
               init: str = "busybox") -> dict[str, tuple[str, int]]:
    """What the image adds to the root for the boot: the script that runs each check
    (`subject: (command, expected)`) in order, with `env` (what the chroot's checks see), and
    what starts it: busybox's inittab, or systemd's unit."""
    lines = [CHECKS_HEAD.format(begin=BEGIN, check=CHECK, report=REPORT, start=START[init])]
    lines += [f"export {k}={shlex.quote(v)}\n" for k, v in (env or {}).items() if k not in ("PATH", "TMPDIR")]
    for i, (command, _) in enumerate(commands.values()):
        lines.append(f"check {i} {shlex.quote(base64.b64encode(command.encode()).decode())}\n")
    if init == "systemd":
        lines += [f"report {name} {shlex.quote(command)}\n" for name, command in REPORTS.items()]
    lines.append(f'echo "{END} $(cut -d\' \' -f1 /proc/uptime)"\n')
    started = {"etc/inittab": (INITTAB, 0o644)} if init == "busybox" else {f"etc/systemd/system/{UNIT}": (UNIT_TEXT, 0o644)}
    return {**started, "usr/lib/serpent/boot-checks": ("".join(lines), 0o755)}


def kernel_command_line(init: str) -> str:
    systemd = f" init=/{SYSTEMD} systemd.wants={UNIT} systemd.mask=serial-getty@ttyS0.service"
    return "root=/dev/vda rw" + (systemd if init == "systemd" else "")


def make_image(seed: Seed, root: Path, out: Path, log: Path, extra: dict[str, tuple[str, int]] | None = None) -> Path:
    """An ext4 image of `root` (plus `extra` files, {path: (text, mode)}) at `out`, by the seed's
    mke2fs; files are root's in it. Reproducible: fixed UUID and hash seed, every time and mtime
    SOURCE_DATE_EPOCH. The tree is staged beside `out` and removed."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.tree-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        tree = copy_tree(root, staging)
        for name in MOUNT_POINTS:
            (tree / name).mkdir(mode=0o755, exist_ok=True)
        for rel, (text, mode) in (extra or {}).items():
            path = tree / rel
            if path.is_symlink():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(mode)
        stamp = int(SOURCE_DATE_EPOCH)
        used, paths = 0, ["/"]
        for entry in walk(tree):
            if any(c in entry.rel for c in '"\\\n'):  # debugfs could not name it (below)
                raise SerpentError(f"{root} holds a path the image cannot be made with: {entry.rel!r}",
                                   "a root's paths hold no double quote, backslash or newline; remove it")
            used += entry.st.st_size if entry.is_file else 4096
            os.utime(entry.path, (stamp, stamp), follow_symlinks=False)
            paths.append("/" + entry.rel)
        os.utime(tree, (stamp, stamp))
        # mke2fs -d copies each file's ctime, which no one can set, and its atime, which reading
        # a directory moves: debugfs sets both after.
        (staging.parent / f"{staging.name}.debugfs").write_text(
            "".join(f'sif "{p}" {field} @{stamp}\n' for p in paths for field in ("ctime", "atime")))
        size = (int(used * 1.3) + 32 * MIB) // MIB  # room for metadata and the journal
        out.unlink(missing_ok=True)
        sandbox = seed.sandbox(writable=[out.parent], env={"E2FSPROGS_FAKE_TIME": SOURCE_DATE_EPOCH})
        argv = ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "serpent", "-U", IMAGE_UUID,
                "-E", f"hash_seed={IMAGE_UUID},root_owner=0:0", "-d", str(tree), str(out), f"{size}M"]
        rec = sandbox.run(argv, cwd="/", log=log, step=Step("stage4", "image", phase="image"))
        if rec.exit_code == 0:
            rec = sandbox.run(["debugfs", "-w", "-f", f"{staging}.debugfs", str(out)], cwd="/", log=log,
                              step=Step("stage4", "image", phase="image"))
        if rec.exit_code != 0:
            raise SerpentError(f"mke2fs and debugfs could not make the image {out} (exit {rec.exit_code})", f"see {log}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        Path(f"{staging}.debugfs").unlink(missing_ok=True)
    return out


def sparse_copy(src: Path, dest: Path, block: int = MIB) -> Path:
    """A copy of `src` that leaves its holes holes (an image is mostly empty)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as a, open(dest, "wb") as b:
        while chunk := a.read(block):
            if chunk.count(0) == len(chunk):
                b.seek(len(chunk), os.SEEK_CUR)
            else:
                b.write(chunk)
        b.truncate()
    return dest


@dataclass
class Boot:
    """One QEMU run: how it ended and what the console said."""

    accel: str
    why: str                    # why this accelerator
    exit_code: int
    wall_s: float
    timed_out: bool
    console: Path
    lines: list[str] = field(default_factory=list)
    init: str = "busybox"

    @cached_property
    def reports(self) -> dict[str, str]:
        """What the boot's `report` lines printed (systemd's state, time, blame, failed units)."""
        out = {}
        for line in self.lines:
            parts = line.strip().split(" ")
            if len(parts) in (2, 3) and parts[0] == REPORT:
                out[parts[1]] = decoded(parts[2]) if len(parts) == 3 else ""
        return out

    def units(self) -> list[dict]:
        """`systemd-analyze blame`: how long each unit took to start, longest first."""
        rows = []
        for line in self.reports.get("blame", "").splitlines():
            *span, unit = line.split()
            if span and (seconds := time_span(" ".join(span))) is not None:
                rows.append({"unit": unit, "seconds": seconds, "accel": self.accel})
        return rows

    def tail(self, n: int = 12) -> str:
        return " | ".join(line.strip() for line in self.lines[-n:] if line.strip())


def qemu_argv(kernel: Path, image: Path | None, console: Path, accel: str, memory: int = 512,
              append: str = "") -> list[str]:
    argv = ["qemu-system-x86_64", "-M", f"pc,accel={accel}", "-m", str(memory), "-smp", "1", "-no-reboot",
            "-nic", "none", "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
            "-kernel", str(kernel), "-append", f"console=ttyS0 panic=-1 {append}".strip()]
    if image is not None:
        argv += ["-drive", f"file={image},format=raw,if=virtio"]
    return argv


def decoded(text: str) -> str:
    """A console line's base64 field; a line that another writer cut into says so."""
    try:
        return base64.b64decode(text, validate=True).decode(errors="replace")
    except ValueError:
        return f"(not base64 on the console, cut by another writer: {text[:80]!r})"


SPAN = re.compile(r"(\d+(?:\.\d+)?)(ms|us|min|h|s)")
UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}


def time_span(text: str) -> float | None:
    """systemd's time span ("1min 31.612s", "448ms") in seconds; None if it is not one."""
    parts = text.split()
    matched = [SPAN.fullmatch(p) for p in parts]
    if not parts or not all(matched):
        return None
    return round(sum(float(m.group(1)) * UNITS_S[m.group(2)] for m in matched if m), 6)


def run_qemu(seed: Seed, kernel: Path, image: Path | None, console: Path, accel: str, timeout: float,
             log: Path, why: str = "", append: str = "root=/dev/vda rw") -> Boot:
    """Boot once in the seed's sandbox; killed at `timeout` (its pid namespace goes with it, so
    QEMU never outlives the call)."""
    console = console.absolute()
    console.parent.mkdir(parents=True, exist_ok=True)
    console.unlink(missing_ok=True)
    where = sorted({kernel.parent.absolute(), console.parent} | ({image.parent.absolute()} if image else set()))
    sandbox = seed.sandbox(writable=[console.parent], visible=[w for w in where if w != console.parent],
                           devices=["/dev/kvm"] if accel == "kvm" else [])
    t0 = time.monotonic()
    rec = sandbox.run(qemu_argv(kernel.absolute(), image.absolute() if image else None, console, accel, append=append),
                      cwd="/", log=log, step=Step("stage4", "boot", phase="boot"), timeout=timeout)
    wall = time.monotonic() - t0
    lines = console.read_text(errors="replace").splitlines() if console.is_file() else []
    if not lines:  # QEMU stopped before the guest said anything: what QEMU said instead
        lines = [f"(nothing on the console; QEMU's log {log.name}:)"] + log.read_text(errors="replace").splitlines()[1:]
    return Boot(accel, why, rec.exit_code, round(wall, 3), wall >= timeout, console, lines)


def kvm_works(seed: Seed, kernel: Path, scratch: Path, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether KVM boots here: /dev/kvm must open, then a probe boot of `kernel` (no disk) must
    print the kernel's banner within `timeout`. A nested guest that hangs fails the probe."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return False, f"/dev/kvm does not open ({exc.strerror})"
    probe = run_qemu(seed, kernel, None, scratch / "kvm-probe.console", "kvm", timeout, scratch / "kvm-probe.log",
                     append="")
    if any("Linux version" in line for line in probe.lines):
        return True, f"a probe boot with KVM printed the kernel's banner in {probe.wall_s:.1f} s"
    return False, (f"/dev/kvm opens, but a probe boot with KVM printed no kernel banner in {timeout:.0f} s "
                   f"(exit {probe.exit_code}): TCG instead")


def boot_root(seed: Seed, root: Path, commands: dict[str, tuple[str, str]], out: Path, logs: Path,
              stage: str = "stage4", timeout: float = 0.0, accel: str = "auto",
              env: dict[str, str] | None = None) -> tuple[Boot, list[CheckRecord], list[dict]]:
    """Make the image of `root` in `out` with the boot checks of `commands` (run with `env`), boot
    a copy of it (the system writes to its disk; the image stays the bytes it was made as), and
    judge the console (kept in `logs`, with QEMU's own log): (the boot, one record for the boot and
    one per check, the boot's events as rows)."""
    kernel, init = find_kernel(root), init_of(root)
    image = make_image(seed, root, out / "root.img", logs / "image.log", boot_files(commands, env, init))
    if accel == "auto":
        ok, why = kvm_works(seed, kernel, logs)
        accel = "kvm" if ok else "tcg"
    else:
        why = f"asked for {accel}"
    timeout = timeout or (60.0 if accel == "kvm" else 300.0)
    disk = sparse_copy(image, logs / "disk.img")
    try:
        boot = run_qemu(seed, kernel, disk, logs / "console.log", accel, timeout, logs / "qemu.log", why,
                        kernel_command_line(init))
        boot.init = init
    finally:
        disk.unlink(missing_ok=True)
    return boot, judge(stage, boot, commands), events(boot)


def write_tables(run: Path, booted: Boot, rows: list[dict]) -> None:
    """The boot's events (boot.csv) and, with systemd, each unit's start time (boot-units.csv)."""
    for name, fields, table in (("boot.csv", ["event", "kernel_s", "accel"], rows),
                                ("boot-units.csv", ["unit", "seconds", "accel"], booted.units())):
        if table or name == "boot.csv":
            with open(run / name, "w", newline="") as fh:
                w = csv.DictWriter(fh, fields)
                w.writeheader()
                w.writerows(table)


UPTIME = re.compile(r"^\[\s*(\d+\.\d+)\]\s*(.*)$")


def events(boot: Boot) -> list[dict]:
    """The boot's milestones with their kernel time (seconds since the kernel started)."""
    marks = {"kernel started": "Linux version", "root mounted": "VFS: Mounted root", "init started": "Run /",
             "systemd started": "running in system mode", "restart": "reboot: Restarting system"}
    rows = []
    for line in boot.lines:
        m = UPTIME.match(line.strip())
        text, at = (m.group(2), float(m.group(1))) if m else (line.strip(), None)
        for event, needle in marks.items():
            if needle in text and at is not None and event not in {r["event"] for r in rows}:
                rows.append({"event": event, "kernel_s": at})
        for marker, event in ((BEGIN, "checks begin"), (END, "checks end")):
            if text.startswith(marker):
                rows.append({"event": event, "kernel_s": float(text.split()[-1])})
    finished = re.search(r"Startup finished in (.+?) \(kernel\) \+ (.+?) \(userspace\)", boot.reports.get("time", ""))
    if finished and (kernel := time_span(finished.group(1))) is not None:
        userspace = time_span(finished.group(2))
        rows.append({"event": "kernel done (systemd-analyze)", "kernel_s": kernel})
        if userspace is not None:
            rows.append({"event": "userspace done (systemd-analyze)", "kernel_s": round(kernel + userspace, 6)})
    rows.append({"event": "QEMU exited (wall time)", "kernel_s": boot.wall_s})
    return [{**r, "accel": boot.accel} for r in rows]


def judge(stage: str, boot: Boot, commands: dict[str, tuple[str, str]]) -> list[CheckRecord]:
    """One record for the boot (it reached the checks' end and QEMU exited by itself), one per check."""
    seen: dict[int, tuple[int, str]] = {}
    for line in boot.lines:
        parts = line.strip().split(" ")
        if len(parts) in (3, 4) and parts[0] == CHECK and parts[1].isdigit() and parts[2].isdigit():
            text = decoded(parts[3]) if len(parts) == 4 else ""
            seen[int(parts[1])] = (int(parts[2]), text)
    ended = any(line.strip().startswith(END) for line in boot.lines)
    how = (f"QEMU ({boot.accel}: {boot.why}) " if boot.why else f"QEMU ({boot.accel}) ")
    if boot.timed_out:
        verdict = f"{how}was stopped at the timeout, {boot.wall_s:.0f} s; the console's last lines: {boot.tail()}"
    elif not ended:
        verdict = f"{how}exited ({boot.exit_code}) before the checks ended; the console's last lines: {boot.tail()}"
    else:
        verdict = (f"{how}booted the root's kernel and image ({boot.init} as PID 1), printed {len(seen)} of {len(commands)} checks' "
                   f"results on the console and exited ({boot.exit_code}) in {boot.wall_s:.1f} s")
    records = [CheckRecord(stage, "boots", "qemu", ended and not boot.timed_out and boot.exit_code == 0, verdict)]
    if boot.init == "systemd" and ended:
        records += systemd_records(stage, boot.reports)
    for i, (subject, (_, expect)) in enumerate(commands.items()):
        if i not in seen:
            records.append(CheckRecord(stage, "runs-in-boot", subject, False, "no result on the console"))
            continue
        code, output = seen[i]
        records.append(CheckRecord(stage, "runs-in-boot", subject, code == 0 and expect in output,
                                   f"exit {code}; printed {output.strip()[:160]!r}"))
    return records


def systemd_records(stage: str, reports: dict[str, str]) -> list[CheckRecord]:
    """systemd as PID 1: the state its boot ended in (`running`: every unit started), the system
    bus answering, the journal journald wrote read back by journalctl, and one record per unit
    that failed, with what `systemctl` says of it."""
    state = reports.get("state", "").strip() or "(nothing printed)"
    failed = [line.split()[0] for line in reports.get("failed", "").splitlines() if line.split()]
    finished = (reports.get("time", "").strip().splitlines() or ["systemd-analyze time printed nothing"])[0]
    said = f"systemctl is-system-running --wait: {state}; {finished}"
    records = [CheckRecord(stage, "boot-state", "systemd", state == "running",
                           said + (f"; failed units: {', '.join(failed)}" if failed else "; no unit failed"))]
    names = [line.split()[0] for line in reports.get("bus", "").splitlines() if line.split()]
    records.append(CheckRecord(stage, "system-bus", "dbus", "org.freedesktop.DBus" in names,
                               f"busctl --system list: {', '.join(names[:8]) or reports.get('bus', '').strip()[:200]}"))
    journal = reports.get("journal", "").strip()
    records.append(CheckRecord(stage, "journal", "journald", "Startup finished" in journal,
                               f"journalctl -b read back what journald wrote: {journal[:300] or '(nothing)'}"))
    logs = dict(re.findall(r"^== (\S+)\n((?:(?!== ).*\n?)*)", reports.get("failed-logs", ""), re.MULTILINE))
    for unit in failed:
        said = " | ".join(line.strip() for line in logs.get(unit, "").splitlines() if line.strip())
        records.append(CheckRecord(stage, "unit-failed", unit, False, f"its journal: {said or '(empty)'}"))
    return records


def finished_root(profile: Profile, work_dir: Path) -> tuple[Seed, Path, list[str]]:
    """A completed stage 4 of `work_dir`: the profile's seed, the root, the packages in it."""
    marker = stage_marker(work_dir / "stage4")  # a clear error when stage 4 has not completed there
    return ensure_seed(profile.common.get("seed") or {}), work_dir / "stage4" / "root", list(marker["packages"])


def image_command(profile: Profile, work_dir: Path, out: Path) -> Path:
    """`serpent image`: the stage 4 root as it was installed (busybox's init runs its default
    inittab: a shell on the console), with the mount points a running system needs."""
    seed, root, _ = finished_root(profile, work_dir)
    return make_image(seed, root, out, out.with_name(out.name + ".log"))


def boot_command(profile: Profile, work_dir: Path, out: Path, recipes_dir: Path, timeout: float = 0.0,
                 accel: str = "auto") -> tuple[Boot, list[CheckRecord]]:
    """`serpent boot`: boot the stage 4 root with every recipe's checks, as stage 4 does."""
    seed, root, names = finished_root(profile, work_dir)
    env = final_compiler(profile.parameters(4).get("compiler", "tcc")).env()  # as stage 4's checks have it
    booted, records, _ = boot_root(seed, root, recipe_checks(load_recipes(recipes_dir, names)), out, out,
                                   timeout=timeout, accel=accel, env=env)
    return booted, records
