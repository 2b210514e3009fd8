import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from serpentlib.rows import Step
from serpentlib.build.sandbox import Bind, Sandbox


def output(log: Path) -> str:
    return "\n".join(log.read_text().splitlines()[1:])  # line 0 is the command header


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_environment_is_clean_and_explicit(tmp_path, monkeypatch, root_required):
    monkeypatch.setenv("RANLIB", "leaked-host-ranlib")
    rec = Sandbox(env={"FOO": "bar"}, path="/usr/bin:/bin").run("env | sort", cwd=tmp_path, log=tmp_path / "env.log")
    assert rec.exit_code == 0
    env = dict(line.split("=", 1) for line in output(tmp_path / "env.log").splitlines() if "=" in line)
    assert "RANLIB" not in env and env["FOO"] == "bar" and env["PATH"] == "/usr/bin:/bin"
    assert set(env) <= {"PATH", "HOME", "LC_ALL", "TZ", "TERM", "SHELL", "FOO", "PWD", "SHLVL", "_"}


def test_network_is_unreachable_inside_but_reachable_outside(tmp_path, root_required):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    probe = [sys.executable, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "connected"
    rec = Sandbox().run(probe, cwd=tmp_path, log=tmp_path / "net.log")
    server.close()
    assert rec.exit_code != 0
    assert "connected" not in output(tmp_path / "net.log")
    assert "Network is unreachable" in output(tmp_path / "net.log") or "refused" in output(tmp_path / "net.log")


def test_record_measures_the_command(tmp_path, root_required):
    rec = Sandbox().run("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 7", cwd=tmp_path,
                        log=tmp_path / "x.log", step=Step("s", "p", "1", "build"))
    assert (rec.stage, rec.package, rec.phase, rec.exit_code) == ("s", "p", "build", 7)
    assert rec.wall_s > 0 and rec.user_s > 0 and rec.max_rss_kb > 0 and rec.log == str(tmp_path / "x.log")


def test_chroot_with_binds_proc_and_dev(tmp_path, root_required):
    root, data = tmp_path / "root", tmp_path / "data"
    root.mkdir()
    data.mkdir()
    (data / "file").write_text("from the host\n")
    sb = Sandbox(root=root, binds=[Bind(Path("/usr"), "/usr"), Bind(Path("/lib"), "/lib"), Bind(Path("/lib64"), "/lib64"),
                                   Bind(Path("/bin"), "/bin"), Bind(data, "/data", readonly=True)], path="/usr/bin:/bin")
    rec = sb.run("cat /data/file; ls /proc/1/status >/dev/null && echo proc; echo x > /dev/null && echo dev;"
                 " touch /data/new 2>/dev/null || echo readonly; touch /usr/x 2>/dev/null || echo usr-readonly;"
                 " echo x > /tmp/t && echo tmp; mkdir /run/systemd && echo run;"
                 # POSIX semaphores live in /dev/shm: Python's multiprocessing (lit's workers) needs room there
                 " python3 -c 'import multiprocessing as m; locks = [m.Lock() for _ in range(64)]; print(\"shm\")'",
                 cwd="/", log=tmp_path / "c.log")
    out = output(tmp_path / "c.log")
    assert rec.exit_code == 0, out
    assert out.split() == ["from", "the", "host", "proc", "dev", "readonly", "usr-readonly", "tmp", "run", "shm"]
    assert str(root) not in host_mounts()
    assert list(root.iterdir()) == [], "/dev, /tmp, /run, /proc and the mount points were made in the namespace, not the root"


KILLED_PARENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from serpentlib.build.sandbox import Bind, Sandbox
    root, data = Path(sys.argv[1]), Path(sys.argv[2])
    sb = Sandbox(root=root, binds=[Bind(Path('/usr'), '/usr'), Bind(Path('/lib'), '/lib'), Bind(Path('/lib64'), '/lib64'),
                                   Bind(Path('/bin'), '/bin'), Bind(data, '/data', readonly=False)])
    sb.run(f'echo $$ > /data/started; exec sleep {sys.argv[3]}', cwd='/', log=data / 'run.log')
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_mount_or_process_is_left_after_the_parent_is_killed(tmp_path, sig, root_required):
    root, data = tmp_path / "root", tmp_path / "data"
    root.mkdir()
    data.mkdir()
    marker = f"300.{random.randrange(10**8):08d}"  # a sleep no other process on the machine has
    scratch = set(Path("/tmp").glob("serpent-*"))
    parent = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(root), str(data), marker])
    deadline = time.monotonic() + 20
    while not (data / "started").exists():
        assert time.monotonic() < deadline, "the sandboxed command never started"
        time.sleep(0.05)
    sleepers = subprocess.run(["pgrep", "-f", f"^sleep {marker}"], capture_output=True, text=True).stdout.split()
    assert sleepers
    assert str(root) not in host_mounts(), "mounts are private to the namespace, even while it runs"
    parent.send_signal(sig)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in sleepers):
        assert time.monotonic() < deadline, "the sandboxed process outlived its parent"
        time.sleep(0.05)
    findmnt = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in findmnt
    assert set(Path("/tmp").glob("serpent-*")) <= scratch, "no spec file or scratch folder is left in /tmp"


def test_missing_command_is_a_failed_record_not_a_crash(tmp_path, root_required):
    rec = Sandbox().run(["/nonexistent/tool"], cwd=tmp_path, log=tmp_path / "m.log")
    assert rec.exit_code == 127 and "cannot run /nonexistent/tool" in output(tmp_path / "m.log")


def test_read_only_host_keeps_the_work_tree_visible_under_tmp(tmp_path, root_required):
    """Host builds get a private /tmp; a work directory under /tmp must stay readable, its build tree writable."""
    assert str(tmp_path).startswith("/tmp/")
    (tmp_path / "stage1" / "sysroot").mkdir(parents=True)
    (tmp_path / "stage1" / "sysroot" / "header.h").write_text("seen\n")
    tree = tmp_path / "stage2" / "build" / "pkg"
    tree.mkdir(parents=True)
    rec = Sandbox(writable=[tree], visible=[tmp_path]).run(
        f"cat {tmp_path}/stage1/sysroot/header.h && touch {tree}/built && echo rw;"
        f" touch {tmp_path}/stage1/sysroot/x 2>&1; touch /var/tmp/serpent-x 2>&1; echo private > /tmp/p && cat /tmp/p",
        cwd=tree, log=tmp_path / "ro.log")
    out = output(tmp_path / "ro.log")
    assert rec.exit_code == 0, out
    assert "seen\nrw\n" in out and out.count("Read-only file system") == 2 and out.endswith("private")
    assert (tree / "built").exists() and not (tmp_path / "stage1" / "sysroot" / "x").exists()
    assert not Path("/tmp/p").exists()


def test_commands_get_default_signal_dispositions(tmp_path, root_required):
    """Python ignores SIGPIPE; a build must not inherit that (a writer to a closed pipe dies, as in a shell)."""
    rec = Sandbox().run("grep -E '^Sig(Ign|Blk)' /proc/self/status; yes | head -1", cwd=tmp_path, log=tmp_path / "s.log")
    lines = dict(line.split(":\t") for line in output(tmp_path / "s.log").splitlines() if ":\t" in line)
    assert rec.exit_code == 0
    assert int(lines["SigIgn"], 16) & (1 << (13 - 1)) == 0, "SIGPIPE (13) is not ignored"


INTERRUPTED_WORK = textwrap.dedent(r"""
    import resource, signal, sys
    from pathlib import Path
    from serpentlib.build.sandbox import Sandbox
    from serpentlib.errors import Interrupted
    from serpentlib.rows import Step
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    log = Path(sys.argv[1])
    (log.parent / "Makefile").write_text("all: a b\na b:\n\t@while :; do :; done\n")
    try:  # two busy jobs under make, as a build runs them
        Sandbox().run(f'echo started; exec make -s -j2 -C {log.parent}', cwd='/', log=log, step=Step("", phase="build"))
    except Interrupted as stop:
        usage, r = resource.getrusage(resource.RUSAGE_CHILDREN), stop.record
        print(f"{usage.ru_utime + usage.ru_stime:.2f} {r.user_s + r.sys_s:.2f} {r.max_rss_kb} {r.exit_code} {r.wall_s}")
""")


def test_an_interrupted_command_is_stopped_and_its_cpu_time_is_counted(tmp_path, root_required):
    """^C stops the namespace politely first, so its processes are reaped up the chain and the
    CPU they used reaches the caller (an interrupted build phase records it); none is left."""
    log = tmp_path / "busy.log"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_WORK, str(log)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while "started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the sandboxed command never started"
        time.sleep(0.05)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    cpu, recorded, rss, code, wall = proc.communicate(timeout=20)[0].split()
    assert float(cpu) > 0.25, f"the busy children's CPU time was lost: {cpu} s"  # the old stop gave 0.0
    # The interrupted command's own record: its CPU, its peak memory, exit 130, the time it ran.
    assert float(recorded) > 0.25 and int(rss) > 0 and int(code) == 130 and float(wall) >= 2


# A build is code from elsewhere: what it may try, and what must come of it.
HOSTILE = r"""
cat /proc/self/uid_map | tr -s ' ' | sed 's/^ //'
grep CapEff /proc/self/status
mknod /tmp/blk b 7 0 2>/dev/null && echo mknod-ok || echo mknod-refused
mount -o remount,rw / 2>/dev/null && echo remount-ok || echo remount-refused
mount -o remount,bind,rw "$TREE" 2>/dev/null && echo rebind-ok || echo rebind-refused
ls /dev | tr '\n' ' '; echo
python3 - <<'PY'
import os
try:  # the double-chroot escape: chroot deeper, climb out, chroot to the real root
    os.makedirs("/tmp/jail", exist_ok=True); fd = os.open("/", os.O_RDONLY); os.chroot("/tmp/jail"); os.fchdir(fd)
    for _ in range(64): os.chdir("..")
    os.chroot("."); open(os.environ["ESCAPE"], "w").write("escaped"); print("escape-ok")
except OSError as exc:
    print("escape-refused", exc.errno)
import ctypes
try:  # into the network namespace of a host process (the test's own), as a build once did
    fd = os.open(f"/proc/{os.environ['HOSTPID']}/ns/net", os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    print("setns-ok" if libc.setns(fd, 0) == 0 else f"setns-refused {ctypes.get_errno()}")
except OSError as exc:
    print("setns-refused", exc.errno)
print("interfaces", sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
PY
grep -E " $TREE | / " /proc/self/mountinfo | grep -q nosuid && echo nosuid
"""


def test_a_hostile_build_holds_no_host_privilege_and_cannot_leave(tmp_path, root_required):
    """Run as root on the host, yet inside: a namespace mapped to one id, no capability, no device
    node but the fixed few, no remount of what is read-only, no chroot escape, no host network."""
    tree, escape = tmp_path / "tree", tmp_path / "escaped"
    tree.mkdir()
    (tree / "hostile.sh").write_text(HOSTILE)
    rec = Sandbox(writable=[tree], visible=[tmp_path]).run("sh hostile.sh", cwd=tree, log=tmp_path / "h.log",
                                                            env={"TREE": str(tree), "ESCAPE": str(escape),
                                                                 "HOSTPID": str(os.getpid())})
    out = output(tmp_path / "h.log")
    assert rec.exit_code == 0, out
    lines = out.splitlines()
    assert lines[0] == f"0 {os.geteuid()} 1", "the command's root maps to the caller's id alone"
    assert lines[1] == "CapEff:\t0000000000000000"
    assert lines[2:5] == ["mknod-refused", "remount-refused", "rebind-refused"]
    assert set(lines[5].split()) <= {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                                     "stdout", "tty", "urandom", "zero"}
    assert lines[6].startswith("escape-refused") and lines[7].startswith("setns-refused"), out
    assert lines[8] == "interfaces ['lo']" and lines[9] == "nosuid"
    assert not escape.exists()


def test_a_host_that_forbids_user_namespaces_is_named_before_anything_is_built(tmp_path, root_required):
    """user.max_user_namespaces=0 (set in a user namespace of the test's own, so the machine is left
    alone): `serpent run` names the setting and what to change, and makes no work directory."""
    work = tmp_path / "work"
    script = (f"echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} -m serpentlib.cli run "
              f"--profile mini --work-dir {work} --run-dir {tmp_path / 'run'} --db {tmp_path / 'm.sqlite'}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 2, proc.stderr
    assert "the sandbox could not be set up" in proc.stderr and "user.max_user_namespaces = 0" in proc.stderr, proc.stderr
    assert "sysctl -w user.max_user_namespaces=10000" in proc.stderr
    assert not work.exists()


def test_a_check_in_the_root_records_what_the_program_printed_not_its_script(tmp_path, root_required):
    """A command of several lines: the log's header names all of it, and the record must not
    mistake that header for the program's output."""
    from serpentlib.stages.verify import check_in_root
    script = "cat > /tmp/prog.sh <<'EOF'\necho printed by the program\nEOF\nsh /tmp/prog.sh"
    [record] = check_in_root("stage4", Sandbox(), {"prog: runs": (script, "printed by the program")}, tmp_path)
    assert record.passed and record.detail == "exit 0; printed 'printed by the program'"
    [said] = check_in_root("stage4", Sandbox(), {"prog: says": ("echo 'cat > /tmp/x'; exit 0", "EOF")}, tmp_path)
    assert not said.passed, "text of the script is not output"
