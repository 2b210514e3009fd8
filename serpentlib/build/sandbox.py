"""The one place build processes start: bubblewrap (`bwrap`), the sandbox of Flatpak and of
Chimera's cbuild.

Every command runs in new user, mount, pid, ipc, uts and (but for apt in stage 0) network
namespaces, its root mapped to the caller (an unprivileged id for an ordinary user; as root, a
namespace whose capabilities hold nowhere else), with every capability dropped and no new
privileges, in a root entered by `pivot_root` with the old one detached, every bind `nosuid` and
`nodev` and read-only where it says so (the command cannot remount it), a fixed minimal `/dev`,
a private `/proc` and `/tmp`, an environment built from nothing and an explicit PATH, its output
in a log file. Mounts live only in the namespace and vanish with it, however it ends; a killed
parent takes the sandbox with it (parent-death signal on bwrap, `--die-with-parent` below it).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Interrupted, SandboxError
from ..files import in_root
from ..rows import INTERRUPTED, PhaseRecord, Step, Timer, now_iso

DEFAULT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SPECIAL = ("/proc", "/dev", "/tmp")  # made anew in every sandbox


@dataclass(frozen=True)
class Bind:
    """`source` on the host appears at `target` (inside the root, when there is one)."""

    source: Path
    target: str
    readonly: bool = True


def userns_hint() -> str:
    """What to change so that the namespaces every build needs may be created."""
    settings = {"/proc/sys/kernel/unprivileged_userns_clone": ("kernel.unprivileged_userns_clone", "1"),
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns":
                    ("kernel.apparmor_restrict_unprivileged_userns", "0"),
                "/proc/sys/user/max_user_namespaces": ("user.max_user_namespaces", "10000")}
    for path, (name, wanted) in settings.items():
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if (wanted == "0") != (value == "0") and (os.geteuid() != 0 or name == "user.max_user_namespaces"):
            return f"user namespaces are off here ({name} = {value}): as root, `sysctl -w {name}={wanted}`"
    if os.geteuid() == 0:
        return "the kernel refused a namespace or mount even to root: check the container's seccomp/AppArmor profile"
    return "allow ordinary users to create user namespaces on this kernel, or run as root"


def bwrap() -> str:
    found = shutil.which("bwrap", path=DEFAULT_PATH)
    if not found:
        raise SandboxError("bubblewrap (bwrap) is not installed: every build step runs in it",
                           "apt-get install bubblewrap (make setup does)")
    return found


def preflight() -> None:
    """Start one empty sandbox, so that a host which forbids what every build needs (user
    namespaces for ordinary users: user.max_user_namespaces=0, Ubuntu's
    kernel.apparmor_restrict_unprivileged_userns=1) says so before anything is built."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="serpent-preflight-") as tmp:
        rec = Sandbox(writable=[Path(tmp)]).run(["/bin/true"], cwd=tmp, log=Path(tmp) / "preflight.log")
        if rec.exit_code != 0:
            raise SandboxError(f"an empty sandbox failed (exit {rec.exit_code}): {_last_line(Path(rec.log))}",
                               userns_hint())


def _child_setup(umask: int, die_with_parent: bool = True) -> None:  # in the child, between fork and exec
    # Python ignores SIGPIPE (and SIGXFSZ); an ignored signal survives exec, and a build whose
    # pipelines see EPIPE instead of dying behaves differently (xz's xzgrep test failed so). A run
    # started in the background ignores SIGINT: the build must not, or ^C cannot stop make politely.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    os.umask(umask)
    if die_with_parent:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _inside(session: int, outer: int) -> list[int]:
    """The processes of a sandbox's session (`session`: its bwrap's pid) but bwrap itself."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == outer:
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session:  # state ppid pgrp session: the session id
            found.append(int(entry))
    return found


@dataclass
class Usage:
    """What a sandbox's processes used: bwrap's own and its namespace's (see `_reap`)."""

    ru_utime: float = 0.0
    ru_stime: float = 0.0
    ru_maxrss: int = 0

    def add(self, usage) -> None:
        self.ru_utime += usage.ru_utime
        self.ru_stime += usage.ru_stime
        self.ru_maxrss = max(self.ru_maxrss, usage.ru_maxrss)


_subreaper = False
# Sandboxes running now, by bwrap's pid: what stop_all stops when builds run in other threads.
_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()
_stopping = threading.Event()


def stop_all(grace: float = 3.0) -> None:
    """Stop every sandbox running in this process's other threads (the stage was interrupted): as
    _stop does, SIGINT to what runs in each, then SIGKILL to those bwraps still there after
    `grace`. Each of their runs raises Interrupted, with what it used; call `allow_runs` after."""
    _stopping.set()
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        _interrupt_inside(proc)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with _live_lock:
            if not _live:
                return
        time.sleep(0.05)
    with _live_lock:
        for proc in _live.values():
            proc.kill()


def allow_runs() -> None:
    _stopping.clear()


def stopping() -> bool:
    """Whether stop_all is stopping this process's runs (what waits elsewhere stops too)."""
    return _stopping.is_set()


def _become_subreaper() -> None:
    """bwrap leaves its namespace's init to exit after it; as a subreaper this process reaps that
    init, and with it what the command used (the init reaped the command)."""
    global _subreaper
    if not _subreaper:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
        _subreaper = True


def _reap(outer_usage, status: bytes) -> Usage:
    """bwrap's usage plus that of its namespace's init (the `child-pid` of its status), reaped here."""
    total = Usage()
    total.add(outer_usage)
    for line in status.splitlines():
        try:
            inner = json.loads(line).get("child-pid")
        except ValueError:
            continue
        if inner:
            try:
                total.add(os.wait4(inner, 0)[2])
            except ChildProcessError:  # bwrap reaped it itself: its usage holds the init's
                pass
    return total


def _interrupt_inside(proc: subprocess.Popen) -> None:
    """SIGINT to every process in a sandbox but its bwrap."""
    for pid in _inside(proc.pid, proc.pid):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _stop(proc: subprocess.Popen, grace: float = 3.0):
    """Stop a sandbox: SIGINT to the processes in it first (not to bwrap, which would go down
    with it unreaped), so ninja and make stop their jobs and every process is reaped up the chain
    and its CPU time reaches this process; SIGKILL to bwrap (and so to all in it) if that takes
    longer than `grace`. Returns the sandbox's resource usage (None if it was reaped elsewhere)."""
    usage = None
    try:
        _interrupt_inside(proc)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and usage is None:
            pid, _, rusage = os.wait4(proc.pid, os.WNOHANG)
            usage = rusage if pid else None
            time.sleep(0 if usage else 0.05)
    except ChildProcessError:
        pass
    finally:
        if usage is None:  # slow, gone already, or a second ^C: the sandbox goes down with bwrap
            proc.kill()
            try:
                usage = os.wait4(proc.pid, 0)[2]
            except ChildProcessError:
                pass
    return usage


@dataclass
class Sandbox:
    """Where and how commands run: a root (or stage 0's seed, or the host), binds, the environment."""

    root: Path | None = None
    binds: list[Bind] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    path: str = DEFAULT_PATH
    shell: str = "/bin/sh"
    network: bool = False
    umask: int = 0o022
    # Without a root: None leaves the host writable; a list makes all of it read-only but these,
    # and a private /tmp; `visible` trees stay readable though they lie under /tmp.
    writable: list[Path] | None = None
    visible: list[Path] = field(default_factory=list)
    # A seed root (stage 0) to run in instead of the host: `/` is the seed, read-only and never
    # written; `visible` and `writable` trees appear at their own paths, the one read-only, the
    # other writable.
    seed: Path | None = None
    devices: list[str] = field(default_factory=list)  # host devices shown as they are (/dev/kvm)

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment a command sees: nothing from the caller's."""
        base = {"PATH": self.path, "HOME": "/nonexistent", "LC_ALL": "C", "TZ": "UTC", "TERM": "dumb",
                "SHELL": self.shell}
        return {**base, **self.env, **(extra or {})}

    # -- what bwrap is told ----------------------------------------------------------------------
    def _trees(self) -> list[tuple[str, str, bool]]:
        """(host source, target, read-only) of every tree bound in, in the order they go: the
        visible trees, then the writable ones (they may lie below those), then the binds."""
        own = [(str(Path(p).absolute()), str(Path(p).absolute()), True) for p in self.visible]
        own += [(str(Path(p).absolute()), str(Path(p).absolute()), False) for p in self.writable or []]
        return own + [(str(b.source), b.target, b.readonly) for b in self.binds]

    def mounts(self) -> list[str]:
        """bwrap's arguments that build the command's file system."""
        trees = self._trees()
        targets = [t for _, t, _ in trees] + list(SPECIAL)
        if self.seed is not None:
            args = _layout(self.seed, targets, writable=False)
        elif self.root is not None:
            args = _layout(self.root, targets, writable=True)
        else:
            args = ["--bind" if self.writable is None else "--ro-bind", "/", "/"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for device in self.devices:
            args += ["--dev-bind", device, device]
        if self.root is not None or self.seed is not None or self.writable is not None:
            args += ["--tmpfs", "/tmp"]  # without a root and read-write, the host's own /tmp is the command's
        if self.root is not None and not os.path.lexists(self.root / "run"):
            args += ["--tmpfs", "/run"]  # runtime state (systemd's tools write /run/systemd), not in the root
        for source, target, readonly in trees:
            args += ["--ro-bind" if readonly else "--bind", source, target]
        if self.seed is not None:
            args += ["--remount-ro", "/"]
        return args

    def command(self, argv: list[str], cwd: Path | str, status_fd: int | None = None) -> list[str]:
        args = [bwrap(), "--unshare-user", "--uid", "0", "--gid", "0", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--unshare-cgroup-try", "--hostname", "serpent", "--die-with-parent",
                "--cap-drop", "ALL"]
        if not self.network:
            args.append("--unshare-net")
        if status_fd is not None:
            args += ["--json-status-fd", str(status_fd)]
        return args + self.mounts() + ["--chdir", str(cwd), "--", *argv]

    def where(self, target: str) -> Path | None:
        """Where the command's path `target` lies on the host (None: on a tmpfs, or nowhere known)."""
        for source, mounted, _ in reversed(self._trees()):
            if target == mounted or target.startswith(mounted.rstrip("/") + "/"):
                return in_root(Path(source), target[len(mounted):]) if target != mounted else Path(source)
        if any(target == s or target.startswith(s + "/") for s in SPECIAL) and (self.root or self.seed):
            return None
        base = self.root or self.seed
        return in_root(base, target) if base is not None else Path(target)

    # -- running ---------------------------------------------------------------------------------
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
        with open(log, "ab") as out:
            out.write(f"# {now_iso()} {step.phase or 'run'}: {command if isinstance(command, str) else ' '.join(argv)}\n".encode())
            out.flush()
            missing = self._missing(argv[0])
            if missing:
                out.write(f"serpent sandbox: cannot run {argv[0]}: {missing}\n".encode())
                return clock.record(step, 127, str(log))
            _become_subreaper()
            status_r, status_w = os.pipe()
            try:
                proc = subprocess.Popen(self.command(argv, cwd, status_w), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, env={**self.environment(env), "PWD": str(cwd)},
                                        pass_fds=(status_w,), preexec_fn=lambda: _child_setup(self.umask),
                                        start_new_session=True)
            except BaseException:
                os.close(status_r)
                raise
            finally:
                os.close(status_w)
            with _live_lock:
                _live[proc.pid] = proc
            timer = threading.Timer(timeout, proc.kill) if timeout else None
            if timer:
                timer.start()
            try:
                _, wait_status, usage = os.wait4(proc.pid, 0)
            except BaseException as exc:  # interrupted: take the whole sandbox down, then re-raise
                usage = _stop(proc)
                proc.returncode = INTERRUPTED
                total = _reap(usage or Usage(), _drain(status_r))  # the namespace's init too: no zombie
                if isinstance(exc, KeyboardInterrupt) and usage is not None:
                    raise Interrupted(clock.record(step, INTERRUPTED, str(log), total)) from exc
                raise
            finally:
                if timer:
                    timer.cancel()
                with _live_lock:
                    _live.pop(proc.pid, None)
            proc.returncode = code = os.waitstatus_to_exitcode(wait_status)
            status = _drain(status_r)
            usage = _reap(usage, status)
            if _stopping.is_set():  # stopped from another thread: interrupted, as by ^C
                raise Interrupted(clock.record(step, INTERRUPTED, str(log), usage))
            ran = b"exit-code" in status  # bwrap says so once the command has run
        if not ran and code >= 0:  # bwrap stopped before the command: its message is the log's last line
            raise SandboxError(f"the sandbox could not be set up: {_last_line(log)}", userns_hint())
        return clock.record(step, code, str(log), usage)

    def interactive(self, argv: list[str], cwd: Path | str = "/") -> int:
        """Run `argv` on this terminal (a shell in a root, say); its exit code. A shell with job
        control takes the terminal's ^C for itself; a plain command is stopped by it."""
        missing = self._missing(argv[0])
        if missing:
            raise SandboxError(f"cannot run {argv[0]} in the sandbox: {missing}", "check the root and the command")
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's ^C is the command's, not ours
        try:
            return subprocess.run(self.command(argv, cwd), env={**self.environment(), "PWD": str(cwd)},
                                  preexec_fn=lambda: _child_setup(self.umask), check=False).returncode
        finally:
            signal.signal(signal.SIGINT, before)

    def _missing(self, program: str) -> str:
        """Why `program` (an absolute path) cannot be run in the sandbox, or '' when it can or
        cannot be told from here (a name found on PATH)."""
        if not program.startswith("/"):
            return ""
        host = self.where(program)
        if host is None:
            return ""
        if not os.path.exists(host):
            return "No such file or directory"
        if not (os.path.isfile(host) and os.access(host, os.X_OK)):
            return "Permission denied"
        return ""


def _drain(fd: int) -> bytes:
    """What bwrap wrote on its status pipe (it has exited: all there is, is there); closes it."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return b"".join(chunks)


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()[1:]
    return lines[-1] if lines else "bwrap said nothing"


def _layout(seed: Path, targets: list[str], writable: bool) -> list[str]:
    """`seed` (a root) as `/` with room for the mount points `targets` that it lacks, without
    making them in it: bwrap's new root is a tmpfs; each top-level entry of the root is bound in
    (read-only, or writable for a stage's own root), but a directory on the way to a missing mount
    point is made on the tmpfs instead (its mode kept) and its own entries are bound in one by
    one, down to where the path leaves the root. A read-only root is never written; nothing the
    sandbox mounts is left in a writable one."""
    expand: set[str] = {"/"}
    for target in targets:
        parts = [p for p in target.split("/") if p]
        for i in range(1, len(parts) + 1):
            here = "/" + "/".join(parts[:i])
            st = _lstat(seed / here.lstrip("/"))
            if st is None or not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                break  # from here on the path is made on the tmpfs
            if i == len(parts):
                break  # the seed has the mount point itself
            if stat.S_ISLNK(st.st_mode):
                raise SandboxError(f"cannot mount at {target} in the seed: {here} is a link there",
                                   "give the tree another path (one outside /usr, /bin, /lib of the seed)")
            expand.add(here)
    args: list[str] = []

    def lay(directory: str) -> None:
        for name in sorted(os.listdir(seed / directory.lstrip("/"))):
            path = f"{directory.rstrip('/')}/{name}"
            if path in SPECIAL:
                continue
            host = seed / path.lstrip("/")
            st = os.lstat(host)
            if path in expand:
                args.extend(["--perms", f"{stat.S_IMODE(st.st_mode):04o}", "--dir", path])
                lay(path)
            elif stat.S_ISLNK(st.st_mode):
                args.extend(["--symlink", os.readlink(host), path])
            elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                args.extend(["--bind" if writable else "--ro-bind", str(host), path])

    lay("/")
    return args


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


__all__ = ["Bind", "DEFAULT_PATH", "Sandbox", "bwrap", "userns_hint"]
