"""The ELF rules a musl root's files are held to, on files the host's clang links."""

import subprocess

import pytest

from serpentlib.elf import elf_info, violations
from serpentlib.stages.verify import check_root_closure

from .conftest import have


def link(tmp_path, name, *flags, needs=None):
    if not have("clang"):
        pytest.skip("needs the host's clang")
    src = tmp_path / f"{name}.c"
    src.write_text("int f(void);\nint main(void) { return f(); }\n" if needs else "int f(void) { return 0; }\n")
    out = tmp_path / name
    args = ["clang", "-o", str(out), str(src), *flags]
    if needs:
        args += [f"-L{needs.parent}", f"-l{needs.name[3:-3]}"]
    subprocess.run(args, check=True, capture_output=True)
    return out


@pytest.mark.parametrize("flags,allowed", [
    (["-Wl,--enable-new-dtags,-rpath,/usr/lib/systemd"], True),       # a package's own library directory
    (["-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"], False),        # relative to wherever the file lies
    (["-Wl,--enable-new-dtags,-rpath,/usr/lib/../../tmp"], False),    # out of /usr/lib by '..'
    (["-Wl,--enable-new-dtags,-rpath,/build/systemd/src"], False),    # the build's own tree
    (["-Wl,--disable-new-dtags,-rpath,/usr/lib/systemd"], False),     # DT_RPATH, which outranks LD_LIBRARY_PATH
])
def test_runpath_only_to_a_library_directory_under_usr_lib(tmp_path, flags, allowed):
    lib = link(tmp_path, "libf.so", "-shared", "-fPIC")
    prog = link(tmp_path, "prog", *flags, needs=lib)
    rules = [(rule, problem) for rule, problem in violations(elf_info(prog)) if rule == "no-rpath"]
    assert (rules == []) == allowed, rules


def test_closure_finds_a_library_through_its_runpath(tmp_path):
    lib = link(tmp_path, "libf.so", "-shared", "-fPIC", "-Wl,-soname,libf.so")
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    for runpath, found_there in (("/usr/lib/systemd", True), ("/usr/lib/other", False)):
        prog = link(tmp_path, "prog", f"-Wl,--enable-new-dtags,-rpath,{runpath}", needs=lib)
        (root / "usr/bin/prog").write_bytes(prog.read_bytes())
        (root / "usr/lib/systemd/libf.so").write_bytes(lib.read_bytes())
        record = {r.subject: r for r in check_root_closure("t", root)}["/usr/bin/prog"]
        # (the host's libc, which the root lacks, is named too: this program is linked for glibc)
        assert ("'libf.so'" not in record.detail) == found_there, record.detail


def test_closure_follows_the_runpath_of_what_loads_a_library(tmp_path):
    """libsystemd-core has no RUNPATH; the programs that load it find libsystemd-shared beside it."""
    shared = link(tmp_path, "libshared.so", "-shared", "-fPIC", "-Wl,-soname,libshared.so")
    core = tmp_path / "libcore.so"
    (tmp_path / "core.c").write_text("int f(void);\nint g(void) { return f(); }\n")
    subprocess.run(["clang", "-shared", "-fPIC", "-Wl,-soname,libcore.so", "-o", str(core), str(tmp_path / "core.c"),
                    f"-L{tmp_path}", "-lshared"], check=True, capture_output=True)
    root = tmp_path / "root"
    (root / "usr/lib/private").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    for lib in (shared, core):
        (root / "usr/lib/private" / lib.name).write_bytes(lib.read_bytes())

    def core_record():
        return {r.subject: r for r in check_root_closure("t", root)}["/usr/lib/private/libcore.so"]

    assert "'libshared.so'" in core_record().detail  # nothing loads it yet: not found
    (tmp_path / "prog.c").write_text("int g(void);\nint main(void) { return g(); }\n")
    subprocess.run(["clang", "-o", str(tmp_path / "prog"), str(tmp_path / "prog.c"), f"-L{tmp_path}", "-lcore",
                    f"-Wl,-rpath-link,{tmp_path}", "-Wl,--enable-new-dtags,-rpath,/usr/lib/private"],
                   check=True, capture_output=True)
    (root / "usr/bin/prog").write_bytes((tmp_path / "prog").read_bytes())
    assert "'libshared.so'" not in core_record().detail
