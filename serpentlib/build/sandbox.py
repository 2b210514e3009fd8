"""The one place build processes start.

Each command runs under `unshare` in private mount, pid and network namespaces, with an
environment built from nothing (`env -i` semantics) and an explicit PATH, its output in a
log file. Mounts are made inside the namespace by `_enter.py`, so they vanish when the
namespace's last process ends: on success, on failure and on SIGKILL alike. A killed parent
takes the sandbox with it (parent-death signal on `unshare`, `--kill-child` below it).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Interrupted, SandboxError, log_tail
from ..rows import INTERRUPTED, PhaseRecord, Step, Timer, now_iso

ENTER = Path(__file__).with_name("_enter.py")
DEFAULT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Bind:
    """`source` on the host appears at `target` (inside the root, when there is one)."""

    source: Path
    target: str
    readonly: bool = True


def userns_hint() -> str:
    """What to change so that an ordinary user may create the namespaces a build needs."""
    if os.geteuid() == 0:
        return "the kernel refused a namespace or mount even to root: check the container's seccomp/AppArmor profile"
    settings = {"/proc/sys/kernel/unprivileged_userns_clone": ("kernel.unprivileged_userns_clone", "1"),
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns":
                    ("kernel.apparmor_restrict_unprivileged_userns", "0"),
                "/proc/sys/user/max_user_namespaces": ("user.max_user_namespaces", "10000")}
    for path, (name, wanted) in settings.items():
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if (wanted == "0") != (value == "0"):
            return f"user namespaces are off for ordinary users: run `sysctl -w {name}={wanted}` as root, or run as root"
    return "run as root, or allow ordinary users to create user namespaces on this kernel"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(proc: subprocess.Popen, grace: float = 3.0):
    """Stop a sandbox's namespace: SIGINT to its processes first (unshare blocks it, the namespace's
    init passes it on), so ninja and make stop their jobs and every process is reaped up the chain
    and its CPU time reaches this process; SIGKILL to unshare if that takes longer than `grace`.
    Returns the namespace's resource usage (None if it was reaped elsewhere)."""
    usage = None
    try:
        os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and usage is None:
            pid, _, rusage = os.wait4(proc.pid, os.WNOHANG)
            usage = rusage if pid else None
            time.sleep(0 if usage else 0.05)
    except (ProcessLookupError, ChildProcessError):
        pass
    finally:
        if usage is None:  # slow, gone already, or a second ^C: the namespace goes down with unshare
            proc.kill()
            try:
                usage = os.wait4(proc.pid, 0)[2]
            except ChildProcessError:
                pass
    return usage


@dataclass
class Sandbox:
    """Where and how commands run: an optional root to chroot into, binds, the environment."""

    root: Path | None = None
    binds: list[Bind] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    path: str = DEFAULT_PATH
    shell: str = "/bin/sh"
    network: bool = False
    proc: bool = True
    dev: bool = True
    tmp: bool = True
    umask: int = 0o022
    # Without a root: None leaves the host writable; a list makes all of it read-only but these,
    # and a private /tmp; `visible` trees stay readable though they lie under /tmp.
    writable: list[Path] | None = None
    visible: list[Path] = field(default_factory=list)
    # A seed root (stage 0) to run in instead of the host: `/` is the seed, read-only (an overlay
    # takes the mount points, so the seed itself is never written); `visible` and `writable`
    # trees appear at their own paths, the one read-only, the other writable.
    seed: Path | None = None

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment a command sees: nothing from the caller's."""
        base = {"PATH": self.path, "HOME": "/nonexistent", "LC_ALL": "C", "TZ": "UTC", "TERM": "dumb",
                "SHELL": self.shell}
        return {**base, **self.env, **(extra or {})}

    def command(self, spec_file: Path) -> list[str]:
        unshare = shutil.which("unshare", path=DEFAULT_PATH)
        if not unshare:
            raise SandboxError("unshare is not installed", "apt-get install util-linux (make setup does)")
        argv = [unshare, "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private"]
        if os.geteuid() != 0:
            argv += ["--user", "--map-root-user"]
        if not self.network:
            argv.append("--net")
        if self.root is None and self.seed is None:
            argv.append("--mount-proc")
        return argv + [sys.executable, "-I", "-S", str(ENTER), str(spec_file)]

    def run(self, command: str | list[str], *, cwd: Path | str, log: Path, step: Step = Step(""),
            env: dict[str, str] | None = None, timeout: float | None = None) -> PhaseRecord:
        """Run `command` (a shell string, or an argv list) and return its record.

        Never raises for a failing command: the record's exit_code says so. Raises
        SandboxError only when the sandbox itself cannot be set up.
        """
        argv = [self.shell, "-c", command] if isinstance(command, str) else list(command)
        log = Path(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        clock = Timer()

        with self._spec_file(argv, cwd, env) as spec_file, open(log, "ab") as out:
            out.write(f"# {now_iso()} {step.phase or 'run'}: {command if isinstance(command, str) else ' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(self.command(spec_file), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env={"PATH": DEFAULT_PATH},
                                    preexec_fn=_die_with_parent, start_new_session=True)
            timer = threading.Timer(timeout, proc.kill) if timeout else None
            if timer:
                timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException as exc:  # interrupted: take the whole namespace down, then re-raise
                usage = _stop(proc)
                if isinstance(exc, KeyboardInterrupt) and usage is not None:
                    raise Interrupted(clock.record(step, INTERRUPTED, str(log), usage)) from exc
                raise
            finally:
                if timer:
                    timer.cancel()
            proc.returncode = code = os.waitstatus_to_exitcode(status)
        tail = log_tail(log, 3)
        if (code == 125 and "serpent sandbox:" in tail) or "unshare failed" in tail:
            raise SandboxError(f"the sandbox could not be set up: {log_tail(log, 1)}", userns_hint())
        return clock.record(step, code, str(log), usage)

    def interactive(self, argv: list[str], cwd: Path | str = "/") -> int:
        """Run `argv` on this terminal (a shell in a root, say); its exit code. ^C reaches it as
        it would any program in the foreground."""
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's ^C is the command's, not ours
        try:
            with self._spec_file(argv, cwd, None) as spec_file:
                return subprocess.run(self.command(spec_file), env={"PATH": DEFAULT_PATH},
                                      preexec_fn=_die_with_parent, check=False).returncode
        finally:
            signal.signal(signal.SIGINT, before)

    @contextmanager
    def _spec_file(self, argv: list[str], cwd: Path | str, env: dict[str, str] | None) -> Iterator[Path]:
        """What the namespace's init (_enter.py) sets up and runs, as a file for it to read."""
        spec = {"root": str(self.root) if self.root else None,
                "binds": [[str(b.source), b.target, b.readonly] for b in self.binds],
                "proc": self.proc, "dev": self.dev, "tmp": self.tmp,
                "writable": None if self.writable is None else [str(Path(p).absolute()) for p in self.writable],
                "visible": [str(Path(p).absolute()) for p in self.visible], "cwd": str(cwd), "umask": self.umask,
                "argv": argv, "env": self.environment(env), "seed": str(self.seed) if self.seed else None}
        if self.seed is not None:  # the overlay's scratch: a tmpfs on it, seen only in the namespace
            spec["scratch"] = tempfile.mkdtemp(prefix="serpent-seed-")
        with tempfile.NamedTemporaryFile("w", prefix="serpent-sandbox-", suffix=".json", delete=False) as fh:
            json.dump(spec, fh)
        try:
            yield Path(fh.name)
        finally:
            os.unlink(fh.name)
            if spec.get("scratch"):
                os.rmdir(spec["scratch"])
