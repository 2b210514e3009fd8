"""Runs as pid 1 inside the sandbox's new namespaces: mount, chroot, then exec the command.

Started by `sandbox.Sandbox.run` as `python -I -S _enter.py SPEC.json`; standard library
only, since it may run before the chroot has anything in it. All mounts made here live in
the private mount namespace and vanish with it, however the process ends.
"""

import ctypes
import errno
import json
import os
import signal
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_libc = ctypes.CDLL(None, use_errno=True)


def fail(message, code=125):
    sys.stderr.write(f"serpent sandbox: {message}\n")
    sys.stderr.flush()
    os._exit(code)


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        fail(f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(err)}")


def make_mountpoint(target, like):
    if os.path.isdir(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()


def inside(root, path):
    return os.path.join(root, path.lstrip("/")) if root else path


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def read_only_host(writable, visible):
    """Everything read-only (mount_setattr with AT_RECURSIVE) but a private tmpfs /tmp and the
    `writable` trees. `visible` trees stay readable even where the new /tmp would hide them:
    both are bound back in from handles taken before /tmp was covered."""
    handles = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY), False) for path in visible]
    handles += [(path, os.open(path, os.O_PATH | os.O_DIRECTORY), True) for path in writable]
    attr = MountAttr(attr_set=1)  # MOUNT_ATTR_RDONLY
    if _libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:  # mount_setattr
        fail(f"cannot make the host read-only: {os.strerror(ctypes.get_errno())}")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=1g")
    for path, fd, rw in handles:  # ancestors before descendants: `visible` holds the build trees
        os.makedirs(path, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if rw:
            mount(None, path, None, MS_REMOUNT | MS_BIND)  # the bind kept the read-only flag: lift it
        os.close(fd)


def bind(source, where, readonly):
    mount(source, where, None, MS_BIND | MS_REC)
    if readonly:
        mount(None, where, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def binds(root, spec):
    for source, target, readonly in spec.get("binds", []):
        where = inside(root, target)
        if not os.path.exists(source):
            fail(f"bind source {source} does not exist")
        if os.path.islink(where):
            os.unlink(where)
        make_mountpoint(where, source)
        bind(source, where, readonly)


def mount_point(root, where):
    """Make directory `where` in the seed's overlay. In a user namespace the seed's directories
    belong to an owner the namespace does not map, and the overlay cannot copy them up
    (EOVERFLOW): a tmpfs over the deepest existing directory takes the mount point instead."""
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as exc:
        if exc.errno not in (errno.EOVERFLOW, errno.EPERM, errno.EACCES):
            raise
        parent = where
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if os.path.samefile(parent, root):
            raise
        mount("tmpfs", parent, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        os.makedirs(where, exist_ok=True)


def enter_seed(spec):
    """`/` becomes the seed (stage 0): an overlay whose upper layer is a tmpfs on the scratch
    folder, so mount points never touch the seed; /proc, /dev and /tmp; the `visible` trees
    read-only and the `writable` ones writable at their own paths; last the overlay itself is
    made read-only. Handles to the trees are taken first: the new /tmp must not hide them."""
    handles = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY), False) for path in spec.get("visible") or []]
    handles += [(path, os.open(path, os.O_PATH | os.O_DIRECTORY), True) for path in spec.get("writable") or []]
    scratch = spec["scratch"]
    mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m")
    for name in ("upper", "work", "root"):
        os.mkdir(os.path.join(scratch, name))
    root = os.path.join(scratch, "root")
    mount("overlay", root, "overlay", 0,
          f"lowerdir={spec['seed']},upperdir={scratch}/upper,workdir={scratch}/work")
    special(root, spec)
    for path, fd, rw in handles:  # ancestors before descendants: `visible` holds the build trees
        where = inside(root, path)
        mount_point(root, where)
        bind(f"/proc/self/fd/{fd}", where, not rw)
        os.close(fd)
    binds(root, spec)
    mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    os.chroot(root)


def setup(spec):
    root = spec.get("root")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if spec.get("seed"):
        return enter_seed(spec)
    if not root and spec.get("writable") is not None:
        read_only_host(spec["writable"], spec.get("visible") or [])
    binds(root, spec)
    if not root:
        return
    special(root, spec)
    os.chroot(root)


def special(root, spec):
    """/proc, a tmpfs /tmp and a minimal /dev inside `root`, as the spec asks."""
    if spec.get("proc"):
        os.makedirs(inside(root, "/proc"), exist_ok=True)
        mount("proc", inside(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if spec.get("tmp"):
        os.makedirs(inside(root, "/tmp"), exist_ok=True)
        mount("tmpfs", inside(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=512m")
    if spec.get("dev"):
        dev = inside(root, "/dev")
        os.makedirs(dev, exist_ok=True)
        mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
        for node in DEV_NODES:
            open(os.path.join(dev, node), "a").close()
            mount(f"/dev/{node}", os.path.join(dev, node), None, MS_BIND)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, os.path.join(dev, name))
        os.makedirs(os.path.join(dev, "shm"), exist_ok=True)  # POSIX semaphores (Python's multiprocessing, lit)
        mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=64m")


def main(spec_path):
    with open(spec_path) as fh:
        spec = json.load(fh)
    setup(spec)
    try:
        os.chdir(spec["cwd"])
    except OSError as exc:
        fail(f"cannot enter {spec['cwd']}: {exc.strerror}")
    os.umask(spec.get("umask", 0o022))
    argv, env = spec["argv"], {**spec["env"], "PWD": spec["cwd"]}  # shells trust PWD when it is right
    child = os.fork()
    if child == 0:
        # Python ignores SIGPIPE (and SIGXFSZ); an ignored signal survives exec, and a build whose
        # pipelines see EPIPE instead of dying behaves differently (xz's xzgrep test failed so).
        # A run started in the background ignores SIGINT: the build must not, or ^C cannot stop
        # make and ninja politely.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        try:
            os.execve(argv[0], argv, env)
        except OSError as exc:
            fail(f"cannot run {argv[0]}: {exc.strerror}", 127)
    # pid 1 gets no default signal actions: pass the polite ones on to the command.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        pid, status = os.waitpid(-1, 0)  # reap orphans too: we are their init
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv[1])
