"""The pieces of stage 3's clang checks that need no LLVM build: lit's results as records, the
tree comparison of the fixpoint, and the chroot's compiler environments."""

import pytest

from serpentlib.errors import SerpentError
from serpentlib.stages.llvm_checks import compare_trees, lit_records
from serpentlib.stages.stage3 import native_env


def test_lit_results_become_one_record_per_test_with_outcomes():
    result = {"tests": [
        {"name": "lld :: ELF/a.s", "code": "PASS", "elapsed": 0.5},
        {"name": "lld :: ELF/b.s", "code": "FAIL", "output": "error: boom"},
        {"name": "lld :: ELF/c.s", "code": "XFAIL"},
        {"name": "lld :: ELF/d.s", "code": "UNSUPPORTED"},
    ]}
    records = lit_records("stage3", "lld/test/ELF", result)
    assert [(r.subject, r.outcome, r.passed) for r in records] == [
        ("lld/test/ELF: ELF/a.s", "pass", True), ("lld/test/ELF: ELF/b.s", "fail", False),
        ("lld/test/ELF: ELF/c.s", "xfail", True), ("lld/test/ELF: ELF/d.s", "skip", True)]
    assert "boom" in records[1].detail and records[2].reason and records[3].reason


def test_compare_trees_names_differing_files_and_links_and_those_one_tree_lacks(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for top in (a, b):
        (top / "usr" / "bin").mkdir(parents=True)
        (top / "usr" / "bin" / "same").write_bytes(b"\x7fELF same")
    (a / "usr" / "bin" / "clang").write_bytes(b"one")
    (b / "usr" / "bin" / "clang").write_bytes(b"two")
    (a / "usr" / "bin" / "cc").symlink_to("clang")
    (b / "usr" / "bin" / "cc").symlink_to("gcc")
    (a / "usr" / "bin" / "extra").write_bytes(b"x")
    assert compare_trees(a, b) == (["usr/bin/cc", "usr/bin/clang"], ["usr/bin/extra"])
    assert compare_trees(a, a) == ([], [])


def test_the_chroot_environment_follows_the_compiler():
    tcc = native_env("tcc", serpent=True)
    assert tcc["CC"] == "tcc -B/serpent/usr/lib/tcc" and "LD_LIBRARY_PATH" not in tcc
    assert native_env("tcc")["CC"] == "tcc"
    clang = native_env("clang", serpent=True)
    assert (clang["CC"], clang["CXX"], clang["AR"]) == ("clang", "clang++", "llvm-ar")
    assert clang["LD_LIBRARY_PATH"] == "/serpent/usr/lib"  # /serpent's LLVM needs its libc++
    assert "LD_LIBRARY_PATH" not in native_env("clang")    # the root alone needs nothing of it
    with pytest.raises(SerpentError, match="unknown compiler 'gcc'"):
        native_env("gcc")
