"""libc-support's getconf and getent, built against musl, compared with the host's glibc tools on
the same machine and the same /etc files.

Everything goes through the `libc_tool` fixture: `run(tool, *args)` runs the musl-built `getconf`
or `getent` on this machine, with the host's /etc files, and returns the CompletedProcess (text).
They are the binaries the bootstrap shipped: built by tcc in stage 3, packaged, and installed
into the stage4 root from the repository.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from serpentlib.build.recipes import load_recipe

from .conftest import ROOT, have

RECIPE = ROOT / "recipes" / "libc-support"
SRC = RECIPE / "src"
WARNINGS = "-std=c99 -pedantic -Wall -Wextra"

# ---------------------------------------------------------------------------------------------
# Where musl and glibc legitimately differ: these getconf names are not compared with glibc;
# each says what ours and glibc's `getconf -a` list ("" is undefined), and why. The reason is
# written from the values, and test_getconf_differences_are_what_they_say asserts both.
class Differs(NamedTuple):
    ours: str | None    # None: the kernel's value, checked by test_getconf_caches_are_the_kernels
    glibc: str | None   # None: depends on the host (its glibc version, its CPU)
    why: str


def _shown(value: str | None) -> str:
    return "undefined" if value == "" else "the host's" if value is None else value


def differs(ours: str | None, glibc: str | None, why: str) -> Differs:
    return Differs(ours, glibc, f"{why}: musl {_shown(ours)}, glibc {_shown(glibc)}")


def musl_option(glibc: str = "200809") -> Differs:
    return differs("", glibc, "an option musl's sysconf() does not claim")


def musl_no_limit(glibc: str) -> Differs:
    return differs("", glibc, "musl sets no such limit; glibc compiles one in")


ENV_FLAGS = differs("", "-m64", "musl's confstr(): the native environment needs no flag")
CPU_CACHE = differs(None, None, "glibc asks CPUID itself; we read the kernel's /sys cache description")
GETCONF_DIFFERENCES = {
    "_POSIX_SYNC_IO": differs("1", "", "musl's pathconf() says synchronised I/O is supported"),
    "POSIX_REC_INCR_XFER_SIZE": differs("4096", "", "musl's pathconf() gives the page size"),
    "POSIX_REC_MAX_XFER_SIZE": differs("4096", "", "musl's pathconf() gives the page size"),
    "ATEXIT_MAX": musl_no_limit("2147483647"),
    "PASS_MAX": musl_no_limit("8192"),
    "STREAM_MAX": musl_no_limit("16"),
    "_POSIX_STREAM_MAX": musl_no_limit("16"),
    "EXPR_NEST_MAX": musl_no_limit("32"),
    "POSIX2_EXPR_NEST_MAX": musl_no_limit("32"),
    "LINE_MAX": musl_no_limit("2048"),
    "POSIX2_LINE_MAX": musl_no_limit("2048"),
    "_POSIX2_LINE_MAX": musl_no_limit("2048"),
    "NSS_BUFLEN_GROUP": differs("", "1024", "musl has no NSS and no getgr*_r buffer limit"),
    "NSS_BUFLEN_PASSWD": differs("", "1024", "musl has no NSS and no getpw*_r buffer limit"),
    "MB_LEN_MAX": differs("4", "16", "<limits.h>: musl's multibyte characters are UTF-8"),
    "NL_ARGMAX": differs("9", "4096", "<limits.h>: the message-catalogue limits differ"),
    "NL_LANGMAX": differs("32", "2048", "<limits.h>: the message-catalogue limits differ"),
    "NL_MSGMAX": differs("32767", "2147483647", "<limits.h>: the message-catalogue limits differ"),
    "NL_NMAX": differs("16", "2147483647", "<limits.h>: the message-catalogue limits differ"),
    "NL_SETMAX": differs("255", "2147483647", "<limits.h>: the message-catalogue limits differ"),
    "NL_TEXTMAX": differs("2048", "2147483647", "<limits.h>: the message-catalogue limits differ"),
    "CHARCLASS_NAME_MAX": differs("14", "2048", "<limits.h>"),
    "COLL_WEIGHTS_MAX": differs("2", "255", "sysconf()"),
    "POSIX2_COLL_WEIGHTS_MAX": differs("2", "255", "sysconf()"),
    "RE_DUP_MAX": differs("255", "32767", "the regex engines' repetition limits"),
    "POSIX2_RE_DUP_MAX": differs("255", "32767", "the regex engines' repetition limits"),
    "PTHREAD_KEYS_MAX": differs("128", "1024", "the thread-key tables"),
    "PTHREAD_STACK_MIN": differs("2048", "16384", "the smallest thread stacks"),
    "SSIZE_MAX": differs("9223372036854775807", "32767",
                         "musl gives SSIZE_MAX itself, glibc's sysconf() the POSIX minimum"),
    "_POSIX_SSIZE_MAX": differs("9223372036854775807", "32767",
                                "musl gives SSIZE_MAX itself, glibc's sysconf() the POSIX minimum"),
    "TZNAME_MAX": differs("6", "", "musl limits zone abbreviations"),
    "_POSIX_TZNAME_MAX": differs("6", "", "musl limits zone abbreviations"),
    "SYMLOOP_MAX": differs("40", "", "musl gives the kernel's limit"),
    "SEM_NSEMS_MAX": differs("256", "", "musl gives its own limit"),
    "AIO_PRIO_DELTA_MAX": differs("0", "20", "sysconf()"),
    "RTSIG_MAX": differs("30", "32", "musl keeps 3 real-time signals for itself"),
    "_POSIX_PRIORITIZED_IO": musl_option(),
    "_POSIX_PRIORITY_SCHEDULING": musl_option(),
    "_POSIX_SYNCHRONIZED_IO": musl_option(),
    "_POSIX_THREAD_PRIO_INHERIT": musl_option(),
    "_POSIX_THREAD_PRIO_PROTECT": musl_option(),
    "_XOPEN_LEGACY": musl_option("1"),
    "_XOPEN_REALTIME": musl_option("1"),
    "_XOPEN_REALTIME_THREADS": musl_option("1"),
    "_XOPEN_XPG2": musl_option("1"),
    "_XOPEN_XPG3": musl_option("1"),
    "_XOPEN_XPG4": musl_option("1"),
    "POSIX2_CHAR_TERM": musl_option(),
    "POSIX2_C_DEV": musl_option(),
    "POSIX2_LOCALEDEF": musl_option(),
    "POSIX2_SW_DEV": musl_option(),
    "POSIX2_C_VERSION": differs("", "200809", "an obsolete POSIX.2 name musl has no _SC_ constant for"),
    "_XOPEN_XCU_VERSION": differs("700", "4", "musl says SUSv4"),
    "XBS5_LP64_OFF64_CFLAGS": ENV_FLAGS,
    "XBS5_LP64_OFF64_LDFLAGS": ENV_FLAGS,
    "POSIX_V6_LP64_OFF64_CFLAGS": ENV_FLAGS,
    "POSIX_V6_LP64_OFF64_LDFLAGS": ENV_FLAGS,
    "POSIX_V7_LP64_OFF64_CFLAGS": ENV_FLAGS,
    "POSIX_V7_LP64_OFF64_LDFLAGS": ENV_FLAGS,
    "GNU_LIBC_VERSION": differs("", None, "not glibc"),
    "GNU_LIBPTHREAD_VERSION": differs("", None, "not glibc"),
    **{f"LEVEL{level}_{kind}_{field}": CPU_CACHE
       for level, kind in [(1, "ICACHE"), (1, "DCACHE"), (2, "CACHE"), (3, "CACHE"), (4, "CACHE")]
       for field in ("SIZE", "ASSOC", "LINESIZE")},
}
# Values that change from one moment to the next: compared within a tolerance.
MOVING = {"_AVPHYS_PAGES"}
PATH_NAMES_ERRORING = {"LINK_MAX", "_POSIX_LINK_MAX", "NAME_MAX", "_POSIX_NAME_MAX", "FILESIZEBITS"}


# ---------------------------------------------------------------------------------------------
# The tools under test.

@pytest.fixture(scope="module")
def libc_tool(mini_run):
    """run(tool, *args) -> CompletedProcess: the tcc-built getconf/getent of the bootstrap's stage4
    root, installed from its repository, run on this machine through that root's musl loader
    (`libc.so PROGRAM ARGS`): the same kernel, file systems, /etc files, rlimits and CPU
    affinity as the glibc tools they are compared with."""
    proc, _, work_dir = mini_run
    root = work_dir / "stage4" / "root"
    loader, bindir = root / "usr" / "lib" / "libc.so", root / "usr" / "bin"
    if not (bindir / "getconf").is_file():
        pytest.fail(f"the bootstrap left no {bindir / 'getconf'}: {proc.stderr[-2000:]}")

    def run(tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(loader), str(bindir / tool), *args], capture_output=True, text=True, timeout=120)
    return run


def glibc(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def host_is_glibc():
    if not (have("getconf") and have("getent")):
        pytest.skip("needs the host's getconf and getent")
    if not glibc("getconf", "GNU_LIBC_VERSION").stdout.startswith("glibc"):
        pytest.skip("the host's getconf is not glibc's")


def glibc_files(*args: str) -> subprocess.CompletedProcess:
    """glibc's getent on the files alone (-s files): whatever /etc/nsswitch.conf adds (systemd, DNS,
    mdns, db) is left out, so both tools read the same /etc files."""
    return glibc("getent", "-s", "files", *args)


def same(ours: subprocess.CompletedProcess, theirs: subprocess.CompletedProcess, streams=("stdout",)):
    got = (ours.returncode, *(getattr(ours, s) for s in streams))
    want = (theirs.returncode, *(getattr(theirs, s) for s in streams))
    assert got == want, f"{ours.args}:\n ours  {got!r}\n glibc {want!r}"


@contextlib.contextmanager
def rlimit(which: int, soft: int):
    """Children of this process (both tools) run under another soft limit."""
    old = resource.getrlimit(which)
    if old[1] != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > old[1]):
        pytest.skip("the hard limit is too low")
    resource.setrlimit(which, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(which, old)


# ---------------------------------------------------------------------------------------------
# The sources.

def test_recipe_builds_its_own_sources():
    recipe = load_recipe(RECIPE / "recipe.yaml")
    assert recipe.source_dir == SRC and not recipe.sources
    assert {"getconf.c", "getent.c", "Makefile"} <= {p.name for p in SRC.iterdir()}
    assert any("getconf" in c["run"] for c in recipe.checks) and any("getent" in c["run"] for c in recipe.checks)


@pytest.mark.parametrize("tool", ["getconf", "getent"])
def test_sources_compile_warning_free_on_the_host(tool, tmp_path):
    if not have("clang"):
        pytest.skip("needs the host clang (make setup installs it)")
    proc = subprocess.run(["clang", *WARNINGS.split(), "-D_GNU_SOURCE", "-Werror", "-O2", "-o",
                           str(tmp_path / tool), str(SRC / f"{tool}.c")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
_RUNTIME_LINE = re.compile(r"cannot find \S*libclang_rt\.(?:asan|ubsan)\S*|linker command failed")


def sanitizer_runtime_missing(stderr: str) -> bool:
    """Whether a failed compile failed only because the compiler lacks its ASan/UBSan runtime
    libraries (every line of its complaint says so): any other failure is a real one."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return any("libclang_rt" in line for line in lines) and all(_RUNTIME_LINE.search(line) for line in lines)


def test_only_a_missing_sanitizer_runtime_is_taken_for_one(tmp_path):
    if not have("clang"):
        pytest.skip("needs the host clang (make setup installs it)")
    (tmp_path / "ok.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "broken.c").write_text("int main(void) { return 0 }\n")
    (tmp_path / "no-runtime").mkdir()  # a resource dir without runtimes: what a clang lacking them sees

    def stderr(source: str, *extra: str) -> str:
        proc = subprocess.run(["clang", *SANITIZE, *extra, "-o", str(tmp_path / "a.out"), str(tmp_path / source)],
                              capture_output=True, text=True)
        assert proc.returncode != 0
        return proc.stderr

    assert sanitizer_runtime_missing(stderr("ok.c", "-resource-dir", str(tmp_path / "no-runtime")))
    assert not sanitizer_runtime_missing(stderr("broken.c"))
    assert not sanitizer_runtime_missing(stderr("broken.c", "-resource-dir", str(tmp_path / "no-runtime")))


def test_tools_are_clean_under_sanitizers(tmp_path):
    """The host's glibc build under ASan/UBSan, through every database and name."""
    if not have("clang"):
        pytest.skip("needs the host clang (make setup installs it)")
    for tool in ("getconf", "getent"):
        proc = subprocess.run(["clang", *SANITIZE, "-o", str(tmp_path / tool), str(SRC / f"{tool}.c")],
                              capture_output=True, text=True)
        if proc.returncode != 0 and sanitizer_runtime_missing(proc.stderr):
            pytest.skip(f"the host clang has no ASan/UBSan runtime: {proc.stderr.strip().splitlines()[0]}")
        assert proc.returncode == 0, proc.stderr
    runs = [["getconf", "-a"], ["getconf", "-a", "/nonexistent"], ["getconf", "NAME_MAX", "/proc"],
            ["getconf", "NO_SUCH"], ["getent"], ["getent", "-x"], ["getent", "initgroups", "root"],
            ["getent", "hosts", "localhost", "127.0.0.1", "::1", "no-such-host.invalid"],
            ["getent", "services", "80/tcp", "domain", "0x50"], ["getent", "protocols", "6", "udp"],
            ["getent", "networks", "loopback", "127"]]
    runs += [["getent", db] for db in ("passwd", "group", "hosts", "services", "protocols", "networks")]
    for args in runs:
        proc = subprocess.run([str(tmp_path / args[0]), *args[1:]], capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, 1, 2, 3, 64), (args, proc.returncode, proc.stderr)
        assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, (args, proc.stderr)


# ---------------------------------------------------------------------------------------------
# getconf

def listing(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        out.append((name, value.lstrip(" ")))
    return out


@pytest.fixture(scope="module")
def glibc_all():
    return listing(glibc("getconf", "-a").stdout)


def test_getconf_lists_the_same_names_in_the_same_shape(libc_tool, glibc_all):
    proc = libc_tool("getconf", "-a")
    assert proc.returncode == 0 and proc.stderr == ""
    assert [n for n, _ in listing(proc.stdout)] == [n for n, _ in glibc_all]
    for line in proc.stdout.splitlines():  # NAME padded to 34 columns, a space, the value
        name = line.split(" ", 1)[0]
        assert line.startswith(name.ljust(34) + " "), line
    assert set(GETCONF_DIFFERENCES) <= {n for n, _ in glibc_all}, "a documented difference names nothing"


def test_getconf_values_agree_with_glibc(libc_tool, glibc_all):
    ours = dict(listing(libc_tool("getconf", "-a").stdout))
    theirs = dict(listing(glibc("getconf", "-a").stdout))
    wrong = {}
    for name, value in theirs.items():
        if name in GETCONF_DIFFERENCES:
            continue
        if name in MOVING:
            if abs(int(ours[name]) - int(value)) > max(int(value) // 20, 1000):
                wrong[name] = (ours[name], value)
        elif ours[name] != value:
            wrong[name] = (ours[name], value)
    assert not wrong, f"ours vs glibc: {wrong}"


def test_getconf_differences_are_what_they_say(libc_tool, glibc_all):
    """Each documented difference: ours and glibc's values are the ones its reason quotes."""
    ours, theirs = dict(listing(libc_tool("getconf", "-a").stdout)), dict(glibc_all)
    wrong = {}
    for name, d in GETCONF_DIFFERENCES.items():
        got = (ours[name] if d.ours is not None else None, theirs[name] if d.glibc is not None else None)
        if got != (d.ours, d.glibc):
            wrong[name] = f"ours {got[0]!r}, glibc {got[1]!r}; the reason says: {d.why}"
    assert not wrong, wrong


def test_getconf_each_name_alone(libc_tool, glibc_all):
    """getconf NAME (NAME / for the pathconf names): output and exit code, "undefined" included."""
    ours_all = dict(listing(libc_tool("getconf", "-a").stdout))
    for name, _ in glibc_all:
        args = [name]
        if glibc("getconf", name).stderr.startswith("Usage:"):
            args.append("/")
        ours, theirs = libc_tool("getconf", *args), glibc("getconf", *args)
        if name in GETCONF_DIFFERENCES:
            # the value -a lists; blank there is "undefined" alone, or an empty string (confstr)
            assert ours.returncode == 0, name
            assert ours.stdout.rstrip("\n") in {ours_all[name], ours_all[name] or "undefined"}, name
        elif name not in MOVING:
            same(ours, theirs, ("stdout", "stderr"))


def test_getconf_takes_posix_names_without_the_prefix(libc_tool, glibc_all):
    """glibc takes FOO for _POSIX_FOO (VERSION, THREADS, V7_LP64_OFF64, ...), and no other spelling."""
    for name, _ in glibc_all:
        if not name.startswith("_POSIX_") or name in GETCONF_DIFFERENCES:
            continue
        short = name[len("_POSIX_"):]
        args = [short, "/"] if glibc("getconf", short).stderr.startswith("Usage:") else [short]
        same(libc_tool("getconf", *args), glibc("getconf", *args), ("stdout", "stderr"))
    for name in ["NPROCESSORS_ONLN", "_PAGESIZE", "_PAGE_SIZE", "XOPEN_VERSION", "_GNU_LIBC_VERSION",
                 "POSIX_LINK_MAX", "_SC_PAGESIZE", "pagesize", "_CLK_TCK"]:
        same(libc_tool("getconf", name), glibc("getconf", name), ("stdout", "stderr"))


@pytest.mark.parametrize("path", ["/", "/tmp", "/proc", "/dev/shm", "/etc/passwd", "/dev/null"])
def test_getconf_path_values_agree(libc_tool, path):
    if not os.path.exists(path):
        pytest.skip(f"no {path} here")
    ours = dict(listing(libc_tool("getconf", "-a", path).stdout))
    theirs = dict(listing(glibc("getconf", "-a", path).stdout))
    for name in ["LINK_MAX", "NAME_MAX", "PATH_MAX", "PIPE_BUF", "MAX_CANON", "MAX_INPUT", "FILESIZEBITS",
                 "POSIX_ALLOC_SIZE_MIN", "POSIX_REC_MIN_XFER_SIZE", "POSIX_REC_XFER_ALIGN", "SYMLINK_MAX",
                 "POSIX2_SYMLINKS", "_POSIX_CHOWN_RESTRICTED", "_POSIX_NO_TRUNC", "_POSIX_VDISABLE"]:
        assert ours[name] == theirs[name], (path, name, ours[name], theirs[name])
        same(libc_tool("getconf", name, path), glibc("getconf", name, path), ("stdout", "stderr"))


def test_getconf_missing_path(libc_tool):
    """File-system values need the path (exit 3 and a message); the others do not, unless it is empty."""
    for name in sorted(PATH_NAMES_ERRORING) + ["PIPE_BUF", "PATH_MAX", "_POSIX_VDISABLE", "SOCK_MAXBUF"]:
        for path in ("/nonexistent", ""):
            same(libc_tool("getconf", name, path), glibc("getconf", name, path), ("stdout", "stderr"))
    ours = libc_tool("getconf", "-a", "/nonexistent")
    theirs = glibc("getconf", "-a", "/nonexistent")
    assert ours.returncode == theirs.returncode == 0
    ours_v, theirs_v = dict(listing(ours.stdout)), dict(listing(theirs.stdout))
    for name in PATH_NAMES_ERRORING | {"PIPE_BUF", "MAX_CANON", "_POSIX_NO_TRUNC"}:
        assert ours_v[name] == theirs_v[name], name


@pytest.mark.parametrize("args", [
    [], ["NAME_MAX"], ["PAGESIZE", "/"], ["PAGESIZE", "/", "x"], ["LFS_CFLAGS", "/"], ["-v"],
    ["-a", "/", "x"], ["-a", "-v", "X"], ["NO_SUCH_NAME"], ["-x"], ["-h"], ["_NPROCESSORS_ONLN", "x"],
    ["--", "-a"], [""],
], ids=lambda a: " ".join(a) or "no-args")
def test_getconf_usage_errors_as_glibc(libc_tool, args):
    ours, theirs = libc_tool("getconf", *args), glibc("getconf", *args)
    same(ours, theirs, ("stdout", "stderr"))
    assert ours.returncode != 0


@pytest.mark.parametrize("args", [
    ["-v", "POSIX_V7_LP64_OFF64", "PAGESIZE"], ["-vPOSIX_V7_LP64_OFF64", "LONG_BIT"],
    ["-v", "POSIX_V6_ILP32_OFF32", "CLK_TCK"], ["-v", "X", "NAME_MAX", "/"], ["--", "PAGESIZE"],
    ["PAGE_SIZE"], ["_NPROCESSORS_ONLN"], ["_NPROCESSORS_CONF"], ["_PHYS_PAGES"], ["CLK_TCK"],
    ["ARG_MAX"], ["CHILD_MAX"], ["OPEN_MAX"], ["NGROUPS_MAX"], ["HOST_NAME_MAX"], ["SIGQUEUE_MAX"],
    ["PATH"], ["CS_PATH"], ["LFS64_CFLAGS"], ["POSIX_V7_WIDTH_RESTRICTED_ENVS"], ["SOCK_MAXBUF", "/"],
], ids=" ".join)
def test_getconf_answers_as_glibc(libc_tool, args):
    same(libc_tool("getconf", *args), glibc("getconf", *args), ("stdout", "stderr"))


def test_getconf_v_spec_before_a(libc_tool):
    ours = libc_tool("getconf", "-v", "POSIX_V7_LP64_OFF64", "-a")
    assert ours.returncode == 0
    assert [x for x in listing(ours.stdout) if x[0] not in MOVING] == \
        [x for x in listing(libc_tool("getconf", "-a").stdout) if x[0] not in MOVING]


def test_getconf_help_and_version(libc_tool):
    for flag in ("--help", "--version"):
        proc = libc_tool("getconf", flag)
        assert proc.returncode == 0 and proc.stdout and proc.stderr == ""


@pytest.mark.parametrize("stack", [384 * 1024, 1024 * 1024, 8 * 1024 * 1024, 64 * 1024 * 1024,
                                   resource.RLIM_INFINITY], ids=["384K", "1M", "8M", "64M", "unlimited"])
def test_getconf_arg_max_follows_the_stack_limit(libc_tool, stack):
    status = Path("/proc/self/status").read_text()
    used = int(re.search(r"^VmStk:\s+(\d+) kB", status, re.M).group(1)) * 1024
    if stack != resource.RLIM_INFINITY and 2 * used > stack:
        pytest.skip("this process's own stack is too close to that limit")
    with rlimit(resource.RLIMIT_STACK, stack):
        for name in ("ARG_MAX", "_POSIX_ARG_MAX"):
            same(libc_tool("getconf", name), glibc("getconf", name))


def test_getconf_open_max_follows_the_rlimit(libc_tool):
    soft = min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096) // 2
    with rlimit(resource.RLIMIT_NOFILE, soft):
        proc = libc_tool("getconf", "OPEN_MAX")
        same(proc, glibc("getconf", "OPEN_MAX"))
        assert proc.stdout == f"{soft}\n"


def test_getconf_counts_processors_whatever_the_affinity(libc_tool):
    """The kernel's online processors, as glibc counts them, not the ones this process may use."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity")
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        for name in ("_NPROCESSORS_ONLN", "_NPROCESSORS_CONF"):
            same(libc_tool("getconf", name), glibc("getconf", name))
    finally:
        os.sched_setaffinity(0, old)


def test_getconf_caches_are_the_kernels(libc_tool):
    """The LEVEL*_CACHE_* values: cpu0's caches as /sys describes them."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    if not base.is_dir():
        pytest.skip("no /sys cache description")
    want = {}
    for index in sorted(base.glob("index*")):
        level, kind = int((index / "level").read_text()), (index / "type").read_text().strip()
        prefix = f"LEVEL{level}_" + {"Instruction": "ICACHE", "Data": "DCACHE"}.get(kind, "CACHE")
        size = (index / "size").read_text().strip()
        values = {"SIZE": int(size.rstrip("KMG")) * {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1], 1),
                  "ASSOC": int((index / "ways_of_associativity").read_text()),
                  "LINESIZE": int((index / "coherency_line_size").read_text())}
        for field, value in values.items():
            want.setdefault(f"{prefix}_{field}", str(value))
            if kind == "Data":  # a level without a unified cache reports its data cache
                want.setdefault(f"LEVEL{level}_CACHE_{field}", str(value))
    ours = dict(listing(libc_tool("getconf", "-a").stdout))
    names = {name for name, d in GETCONF_DIFFERENCES.items() if d is CPU_CACHE} | (set(want) & set(ours))
    wrong = {name: (ours[name], want.get(name, "")) for name in names if ours[name] != want.get(name, "")}
    assert not wrong, f"ours vs the kernel's: {wrong}"


# ---------------------------------------------------------------------------------------------
# getent

def etc_fields(name: str) -> list[list[str]]:
    """The lines of an /etc file split into fields (':' for the colon files), comments dropped."""
    path = Path("/etc") / name
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    if name in ("passwd", "group", "shadow"):
        return [ln.split(":") for ln in lines if ln and not ln.startswith(("#", "+", "-"))]
    return [ln.split("#", 1)[0].split() for ln in lines if len(ln.split("#", 1)[0].split()) >= 2]


def hosts_v6_lines() -> list[list[str]]:
    return [f for f in etc_fields("hosts") if ":" in f[0]]


DATABASES = ["passwd", "group", "shadow", "hosts", "services", "protocols", "networks"]


def need(db: str):
    if db == "shadow" and os.geteuid() != 0:
        pytest.skip("shadow needs root")
    if not Path("/etc", db).exists():
        pytest.skip(f"no /etc/{db}")


@pytest.mark.parametrize("db", DATABASES)
def test_getent_enumerates_as_glibc(libc_tool, db):
    need(db)
    ours, theirs = libc_tool("getent", db), glibc_files(db)
    if db == "hosts" and hosts_v6_lines():
        # glibc lists IPv6 lines oddly (::1 as 127.0.0.1, the others not at all); we list them as written.
        loop_names = [f[1:] for f in hosts_v6_lines() if f[0] == "::1"]
        ours.stdout = "".join(ln + "\n" for ln in ours.stdout.splitlines() if ":" not in ln.split()[0])
        theirs.stdout = "".join(ln + "\n" for ln in theirs.stdout.splitlines()
                                if not (ln.split()[0] == "127.0.0.1" and ln.split()[1:] in loop_names))
    same(ours, theirs, ("stdout", "stderr"))
    assert ours.returncode == 0 and ours.stdout


def keys_of(db: str) -> list[str]:
    """Keys naming entries of the host's files: names, numbers, aliases, addresses."""
    f = etc_fields(db)
    if db in ("passwd", "group"):
        return [x[0] for x in f] + [x[2] for x in f]
    if db == "shadow":
        return [x[0] for x in f]
    if db == "hosts":  # not scoped addresses (fe80::1%eth0): musl takes them, glibc does not
        f = [x for x in f if "%" not in x[0]]
        return [x[0] for x in f] + [name for x in f for name in x[1:]]
    if db == "services":
        sample = f[::7]
        return ([x[0] for x in sample] + [x[1] for x in sample] + [x[1].split("/")[0] for x in sample]
                + [f"{x[0]}/{x[1].split('/')[1]}" for x in sample] + [a for x in sample for a in x[2:]])
    if db == "protocols":
        return [x[0] for x in f] + [x[1] for x in f] + [a for x in f for a in x[2:]]
    if db == "networks":
        return [x[0] for x in f] + [x[1] for x in f if x[1].count(".") == 3]
    raise AssertionError(db)


@pytest.mark.parametrize("db", DATABASES)
def test_getent_finds_keys_as_glibc(libc_tool, db):
    need(db)
    keys = keys_of(db)
    if not keys:
        pytest.skip(f"/etc/{db} is empty")
    same(libc_tool("getent", db, *keys), glibc_files(db, *keys), ("stdout", "stderr"))


@pytest.mark.parametrize("db, keys", [
    ("passwd", ["no-such-user", "4294967294", "0abc", "0x0"]),
    ("group", ["no-such-group", "4294967294", "0abc"]),
    ("shadow", ["no-such-user", "0"]),
    ("hosts", ["no-such-host.invalid", "192.0.2.77", "2001:db8::77"]),
    ("services", ["no-such-service", "99999", "http/", "/tcp", "0x50", "domain/sctp-x"]),
    ("protocols", ["no-such-protocol", "254", "TcP"]),
    ("networks", ["no-such-network", "203.0.113.0"]),
])
def test_getent_missing_keys_exit_2(libc_tool, db, keys):
    need(db)
    for key in keys:
        ours, theirs = libc_tool("getent", db, key), glibc_files(db, key)
        same(ours, theirs, ("stdout", "stderr"))
        assert ours.returncode == 2 and ours.stdout == ""


def test_getent_one_missing_key_among_found_ones(libc_tool):
    args = ["passwd", "root", "no-such-user", "0"]
    ours = libc_tool("getent", *args)
    same(ours, glibc_files(*args), ("stdout", "stderr"))
    assert ours.returncode == 2 and len(ours.stdout.splitlines()) == 2


@pytest.mark.parametrize("db, key", [
    ("passwd", "+0"), ("passwd", "00"), ("passwd", " 0"), ("group", "00"),
    ("services", "080"), ("services", "53/udp"), ("services", "domain/tcp"),
    ("protocols", "017"), ("protocols", "0x11"), ("protocols", "0"),
    ("hosts", "127.0.0.1"), ("hosts", "127.1"),
])
def test_getent_numeric_keys_as_glibc(libc_tool, db, key):
    need(db)
    same(libc_tool("getent", db, key), glibc_files(db, key), ("stdout", "stderr"))


def test_getent_ahosts_as_glibc(libc_tool):
    v4_only = [f[1] for f in etc_fields("hosts") if "." in f[0]
               and not any(f[1] in v6[1:] for v6 in hosts_v6_lines())]
    if not v4_only:
        pytest.skip("no IPv4-only name in /etc/hosts")
    for args in (["ahosts", v4_only[0]], ["ahostsv4", v4_only[0]], ["ahosts", "127.0.0.1"],
                 ["ahostsv4", "no-such-host.invalid"]):
        same(libc_tool("getent", *args), glibc_files(*args), ("stdout", "stderr"))


def test_getent_initgroups_as_glibc(libc_tool):
    users = [x[0] for x in etc_fields("passwd")][:10] + ["no-such-user"]
    same(libc_tool("getent", "initgroups", *users), glibc_files("initgroups", *users), ("stdout", "stderr"))


@pytest.mark.parametrize("args", [
    [], ["no-such-database"], ["initgroups"], ["-1", "passwd"], ["passwd", "root", "-s"], ["-h"],
    ["--no-such-option"], ["-s", "files", "passwd", "root"], ["-i", "passwd", "root"],
    ["passwd", "--", "root"], ["--service=files", "passwd", "root"], ["-A", "passwd", "0"],
], ids=lambda a: " ".join(a) or "no-args")
def test_getent_arguments_and_exit_codes_as_glibc(libc_tool, args):
    """Exit 1 for a missing or unknown database, 3 for a database that cannot be listed,
    64 for a bad option; the messages on the same streams."""
    same(libc_tool("getent", *args), glibc("getent", *args), ("stdout", "stderr"))


def test_getent_help_and_version(libc_tool):
    for flag in ("--help", "-V", "--usage"):
        proc = libc_tool("getent", flag)
        assert proc.returncode == 0 and proc.stdout and proc.stderr == ""
