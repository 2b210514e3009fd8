"""The pieces of stage 3's clang checks that need no LLVM build: lit's results as records, the
tree comparison of the fixpoint, and the chroot's compiler environments."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from serpentlib.errors import SerpentError
from serpentlib.records.reproduce import compare_trees, fingerprint
from serpentlib.stages.clang import LIT_EXPECTED_FAILURES, judge_fixed_point, lit_records, lit_suite_record
from serpentlib.stages.compilers import final_compiler
from serpentlib.stages.verify import host_paths_in


def test_lit_results_become_one_record_per_test_with_outcomes():
    result = {"tests": [
        {"name": "lld :: ELF/a.s", "code": "PASS", "elapsed": 0.5},
        {"name": "lld :: ELF/b.s", "code": "FAIL", "output": "error: boom"},
        {"name": "lld :: ELF/c.s", "code": "XFAIL"},
        {"name": "lld :: ELF/d.s", "code": "UNSUPPORTED"},
        {"name": "lld :: ELF/e.s", "code": "UNSUPPORTED", "output": "Test requires the following unavailable features: arm\n"},
    ]}
    records = lit_records("stage3", "lld/test/ELF", result)
    assert [(r.subject, r.outcome, r.passed) for r in records] == [
        ("lld/test/ELF: ELF/a.s", "pass", True), ("lld/test/ELF: ELF/b.s", "fail", False),
        ("lld/test/ELF: ELF/c.s", "xfail", False), ("lld/test/ELF: ELF/d.s", "skip", False),
        ("lld/test/ELF: ELF/e.s", "skip", False)]
    assert "boom" in records[1].detail and records[2].reason and records[3].reason
    assert records[4].reason == "UNSUPPORTED: Test requires the following unavailable features: arm"


def test_a_listed_lit_failure_is_an_xfail_with_its_reason_and_passing_makes_it_an_xpass(monkeypatch):
    name = "lld :: ELF/lto/resolution-err.ll"
    monkeypatch.setitem(LIT_EXPECTED_FAILURES, "lld/test/ELF: ELF/lto/resolution-err.ll", "a reason")
    failed, passed = (lit_records("stage3", "lld/test/ELF", {"tests": [{"name": name, "code": code}]})[0]
                      for code in ("FAIL", "PASS"))
    assert (failed.outcome, failed.passed, passed.outcome, passed.fails) == ("xfail", False, "xpass", True)
    assert failed.reason == "a reason"
    suite = lit_suite_record("stage3", "lld/test/ELF", 1, [failed])
    assert suite.outcome == "pass", "lit's exit 1 was for the expected failure alone"
    other = lit_records("stage3", "lld/test/ELF", {"tests": [{"name": "lld :: ELF/x.s", "code": "FAIL"}]})[0]
    assert other.outcome == "fail"


def test_the_fixpoint_compare_names_each_differing_file_with_its_cause_and_ignores_the_rest_of_the_root(tmp_path):
    root, again = tmp_path / "root", tmp_path / "again"
    for top in (root, again):
        (top / "usr" / "bin").mkdir(parents=True)
        (top / "usr" / "bin" / "same").write_bytes(b"\x7fELF same")
    (root / "usr" / "bin" / "clang").write_bytes(b"one")
    (again / "usr" / "bin" / "clang").write_bytes(b"two /build/llvm-fixpoint/build")
    (root / "usr" / "bin" / "cc").symlink_to("clang")
    (again / "usr" / "bin" / "cc").symlink_to("gcc")
    (again / "usr" / "bin" / "extra").write_bytes(b"x")
    (root / "usr" / "bin" / "busybox").write_bytes(b"not the rebuild's")  # the root holds more
    diff = compare_trees("stage3", root, again, Path("/build/llvm"), Path("/build/llvm-fixpoint"),
                         paths=fingerprint(again).keys())
    assert (diff.files, diff.identical) == (6, 3)  # usr and usr/bin are entries too
    causes = dict(zip(diff.differing["path"], diff.differing["cause"]))
    assert list(causes) == ["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/extra"]
    assert causes["/usr/bin/cc"] == "links differ: clang vs gcc"
    assert causes["/usr/bin/clang"] == "embeds its build's work directory path"
    assert causes["/usr/bin/extra"] == "only in one build"
    assert compare_trees("stage3", again, again, again, again).differing.empty


def test_the_chroot_environment_follows_the_compiler():
    tcc = final_compiler("tcc").env(serpent=True)
    assert tcc["CC"] == "tcc -B/serpent/usr/lib/tcc" and "LD_LIBRARY_PATH" not in tcc
    assert final_compiler("tcc").env()["CC"] == "tcc"
    clang = final_compiler("clang").env(serpent=True)
    assert (clang["CC"], clang["CXX"], clang["AR"]) == ("clang", "clang++", "llvm-ar")
    assert clang["LD_LIBRARY_PATH"] == "/serpent/usr/lib"  # /serpent's LLVM needs its libc++
    assert "LD_LIBRARY_PATH" not in final_compiler("clang").env()    # the root alone needs nothing of it
    # Debug info (Python and ninja build with -g) names /serpent's headers where the root has them.
    assert all("-ffile-prefix-map=/serpent/=/" in clang[k].split() for k in ("CFLAGS", "CXXFLAGS"))
    with pytest.raises(SerpentError, match="unknown compiler 'gcc'"):
        final_compiler("gcc")


def test_a_compilers_own_tables_are_not_host_paths_but_a_leaked_path_is_named():
    # What clang holds to find a GCC and to link for glibc targets: a bare prefix and a name.
    tables = b"\x00x86_64-linux-gnu\x00ld-linux-x86-64.so.2\x00/usr/lib/gcc/\x00 '/usr/lib/gcc/*' \\\n"
    assert host_paths_in(tables) == []
    leaked = tables + b"/usr/lib/gcc/x86_64-linux-gnu/12/include\x00/lib64/ld-linux-x86-64.so.2\x00" \
        b"-L/usr/lib/x86_64-linux-gnu -lc\x00/var/tmp/work/stage2\x00"
    assert host_paths_in(leaked, ["/var/tmp/work", "/serpent"]) == [
        "/lib64/ld-linux-x86-64.so.2", "/usr/lib/gcc/x86_64-linux-gnu/12/include", "/usr/lib/x86_64-linux-gnu",
        "/var/tmp/work"]


def test_a_path_a_prefix_map_flag_maps_away_is_not_one_the_file_uses():
    # What python3-config and bashbug record of the CFLAGS stage 3 built them with.
    recorded = b"CFLAGS='-ffile-prefix-map=/serpent/=/ -O2 -fdebug-prefix-map=/var/tmp/work/b=/usr/src'\n"
    assert host_paths_in(recorded, ["/serpent/", "/var/tmp/work"]) == []
    assert host_paths_in(recorded + b"CC=/serpent/usr/bin/clang\n", ["/serpent/", "/var/tmp/work"]) == ["/serpent/"]
    assert host_paths_in(b"-I/var/tmp/work/include", ["/var/tmp/work"]) == ["/var/tmp/work"]


def _fixpoint_trees(tmp_path, programs_differ: bool, objects_differ: bool, runtimes_differ: bool):
    """A root and a rebuild of it, their build trees' objects and both resource directories."""
    from serpentlib.stages.clang import LINK_RUNTIME
    root, dest, serpent = tmp_path / "root", tmp_path / "dest", tmp_path / "serpent"
    first, second = tmp_path / "llvm" / "build", tmp_path / "llvm-fixpoint" / "build"
    for top in (root, dest):
        (top / "usr" / "bin").mkdir(parents=True)
        (top / "usr" / "include").mkdir(parents=True)
        (top / "usr" / "include" / "h.h").write_text("same\n")
    (root / "usr" / "bin" / "clang-14").write_bytes(b"\x7fELF clang linked with stage 2's crtbegin")
    (dest / "usr" / "bin" / "clang-14").write_bytes(b"\x7fELF clang linked with the root's crtbegin" if programs_differ
                                                     else b"\x7fELF clang linked with stage 2's crtbegin")
    for top, text in ((first, b"\x7fELF Sema"), (second, b"\x7fELF Sema, other code" if objects_differ else b"\x7fELF Sema")):
        (top / "lib" / "Sema").mkdir(parents=True)
        (top / "lib" / "Sema" / "Sema.cpp.o").write_bytes(text)
    (second / "utils" / "FileCheck").mkdir(parents=True)  # lit built its tools in the rebuild's tree
    (second / "utils" / "FileCheck" / "FileCheck.cpp.o").write_bytes(b"\x7fELF FileCheck")
    for top, text in ((serpent, b"stage 2's"), (root, b"the root's" if runtimes_differ else b"stage 2's")):
        (top / LINK_RUNTIME).mkdir(parents=True, exist_ok=True)
        (top / LINK_RUNTIME / "clang_rt.crtbegin-x86_64.o").write_bytes(text)
    return root, dest, serpent, first, second


def test_the_fixpoint_passes_on_identical_files_and_excuses_only_a_difference_the_links_explain(tmp_path):
    from serpentlib.stages.clang import judge_fixed_point

    def outcomes(name, **kw):
        records = judge_fixed_point("stage3", *_fixpoint_trees(tmp_path / name, **kw))
        return {(r.check, r.subject): r.outcome for r in records}, records

    same, _ = outcomes("same", programs_differ=False, objects_differ=False, runtimes_differ=True)
    assert same == {("fixed-point", "llvm"): "pass"}
    # The record names its listing: every entry compared, with what the root and the rebuild hold
    listing = tmp_path / "listed" / "fixpoint-llvm.csv"
    [listed] = judge_fixed_point("stage3", *_fixpoint_trees(tmp_path / "listed", False, False, True), listing=listing)
    entries = pd.read_csv(listing).set_index("path")
    assert "fixpoint-llvm.csv" in listed.detail and listed.detail.startswith(f"{len(entries)} installed entries")
    assert set(entries.index) == {"/usr", "/usr/bin", "/usr/bin/clang-14", "/usr/include", "/usr/include/h.h"}
    clang = entries.loc["/usr/bin/clang-14"]
    assert clang["root"] == clang["rebuild"] and clang["root"].startswith("file ") and len(clang["root"].split()[-1]) == 64
    linked, records = outcomes("linked", programs_differ=True, objects_differ=False, runtimes_differ=True)
    assert linked == {("fixed-point", "llvm"): "xfail", ("fixed-point-file", "/usr/bin/clang-14"): "xfail",
                      ("fixed-point-objects", "llvm"): "pass"}
    assert "clang_rt.crtbegin-x86_64.o" in records[0].reason
    # Different objects, or no difference in what the links add: a real failure.
    code, _ = outcomes("code", programs_differ=True, objects_differ=True, runtimes_differ=True)
    assert code[("fixed-point", "llvm")] == code[("fixed-point-objects", "llvm")] == "fail"
    unexplained, _ = outcomes("unexplained", programs_differ=True, objects_differ=False, runtimes_differ=False)
    assert unexplained[("fixed-point", "llvm")] == "fail"
    root, dest, serpent, first, second = _fixpoint_trees(tmp_path / "gone", True, False, True)
    shutil.rmtree(first)
    gone = judge_fixed_point("stage3", root, dest, serpent, first, second)
    assert gone[0].outcome == "fail" and "to compare objects with" in gone[0].detail


def test_the_fixpoints_rebuild_is_patched_outside_the_chroot_as_the_stages_build_was(tmp_path):
    """The recipe's stage 3 patch goes on the rebuild's tree from outside (stage 0 in a run): the
    chroot sees that tree only at /build. Here the chroot is empty, so the rebuild then fails to
    configure, and its record says so."""
    from serpentlib.build.recipes import load_recipe
    from serpentlib.build.sandbox import Bind, Sandbox
    from serpentlib.build.sources import SourceStore
    from serpentlib.build.phases import StageContext
    from serpentlib.stages.clang import check_fixed_point
    from serpentlib.stages.layout import Chroot

    recipe_dir = tmp_path / "recipes" / "patched"
    (recipe_dir / "src").mkdir(parents=True)
    (recipe_dir / "src" / "hello.txt").write_text("old\n")
    (recipe_dir / "patches").mkdir()
    (recipe_dir / "patches" / "0001-new.patch").write_text(
        "Origin: serpentlib\nUpstream-Status: inappropriate\n\n--- a/hello.txt\n+++ b/hello.txt\n@@ -1 +1 @@\n-old\n+new\n")
    (recipe_dir / "recipe.yaml").write_text(
        "name: patched\nversion: '1'\nsummary: a stage 3 patch\nlicense: MIT\nsource_dir: src\nsources: []\n"
        "build:\n  style: script\n  configure: 'true'\n  build: 'true'\n  install: 'true'\n"
        "stage3:\n  patches: [patches/0001-new.patch]\n")
    builds = tmp_path / "work" / "build"
    builds.mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    alone = Sandbox(root=tmp_path / "empty", binds=[Bind(builds, "/build", readonly=False)])  # as stage 3's, bare
    chroot = Chroot(tmp_path / "root", builds, tmp_path / "serpent")
    ctx = StageContext(stage="stage3", work=builds.parent, install_root=builds / "llvm-fixpoint-root",
                       store=SourceStore(tmp_path / "store"), sandbox=alone, logs=tmp_path / "logs",
                       inside=chroot.inside, keep_build_trees=True, host_sandbox=Sandbox())
    records, build = check_fixed_point(ctx, chroot, load_recipe(recipe_dir / "recipe.yaml"), key="k")
    assert (builds / "llvm-fixpoint" / "src" / "hello.txt").read_text() == "new\n"
    assert build is None and len(records) == 1 and not records[0].passed
    assert "llvm-fixpoint failed in configure" in records[0].detail, records[0].detail


def test_no_vacuous_record_lit_exit_status_an_empty_suite_an_empty_fixpoint(tmp_path):
    passed = lit_records("stage3", "lld/test/ELF", {"tests": [{"name": "lld :: ELF/a.s", "code": "PASS"}]})
    assert lit_suite_record("stage3", "lld/test/ELF", 0, passed).outcome == "pass"
    # lit failed (its exit 1, a crash 2) though no test record says so: the suite fails.
    assert lit_suite_record("stage3", "lld/test/ELF", 1, passed).outcome == "fail"
    assert lit_suite_record("stage3", "lld/test/ELF", 2, passed).outcome == "fail"
    empty = lit_suite_record("stage3", "lld/test/ELF", 0, [])
    assert empty.outcome == "fail" and "no test" in empty.detail
    (tmp_path / "dest").mkdir()
    nothing = judge_fixed_point("stage3", tmp_path, tmp_path / "dest", tmp_path, tmp_path / "a", tmp_path / "b")
    assert [(r.check, r.outcome) for r in nothing] == [("fixed-point", "fail")] and "installed nothing" in nothing[0].detail


def test_reproduce_compares_link_targets_kinds_and_modes_of_every_entry(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for top, lib in ((a, "usr/lib"), (b, "opt/lib")):
        (top / "usr" / "lib").mkdir(parents=True)
        (top / "lib").symlink_to(lib)
        (top / "etc").mkdir(mode=0o755)
        (top / "etc" / "conf").write_text("same\n")
    (b / "etc").chmod(0o700)
    (b / "etc" / "conf").chmod(0o600)
    diff = compare_trees("stage3", a, b, a, b)
    causes = dict(zip(diff.differing["path"], diff.differing["cause"]))
    assert causes == {"/etc": "modes differ: 0755 vs 0700", "/etc/conf": "modes differ: 0644 vs 0600",
                      "/lib": "links differ: usr/lib vs opt/lib"}
    assert diff.percent < 100
