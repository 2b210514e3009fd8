import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from serpentlib.build.phases import SizeRecord
from serpentlib.build.cache import BuildCache
from serpentlib.errors import SerpentError
from serpentlib.build.lock import lock_work_dir
from serpentlib.build.recipes import load_recipe
from serpentlib.build.cache import COMPLETE, stage_key
from serpentlib.stages.common import BUILD_TREES, fresh

from .conftest import ROOT


def test_key_covers_recipe_env_sandbox_and_what_the_build_sees(tmp_path):
    cache = BuildCache(tmp_path)
    musl = load_recipe(ROOT / "recipes" / "musl" / "recipe.yaml")
    u1 = {"stage1": "u1"}
    base = cache.key(musl, "stage2", {"CC": "clang"}, u1)
    assert base == cache.key(musl, "stage2", {"CC": "clang"}, u1)
    # Stage 3's intermediate musl is stage 2's build (its stage block says only where it runs):
    # the same key, one build. Stage 1's block builds it otherwise.
    assert base == cache.key(musl, "stage3", {"CC": "clang"}, u1)
    assert base != cache.key(musl, "stage1", {"CC": "clang"}, u1)
    assert base != cache.key(musl, "stage2", {"CC": "clang", "CFLAGS": "-O3"}, u1)
    assert base != cache.key(musl, "stage2", {"CC": "clang"}, {"stage1": "u2"})
    assert base != cache.key(musl, "stage2", {"CC": "clang"}, {**u1, "linux-headers": "d1"})
    assert base != cache.key(musl, "stage2", {"CC": "clang"}, u1, {"kind": "root", "path": "/usr/bin"})
    text = (ROOT / "recipes" / "musl" / "recipe.yaml").read_text()

    def edited(old: str, new: str):
        copy = tmp_path / "musl"
        copy.mkdir(exist_ok=True)
        assert old in text
        (copy / "recipe.yaml").write_text(text.replace(old, new))
        return load_recipe(copy / "recipe.yaml")

    # What stage 2 builds with changes its key; another stage's override, the checks or a
    # comment do not, so a change for stage 3 keeps stage 2's (hours-long) builds.
    assert base != cache.key(edited("--disable-wrapper", "--enable-debug"), "stage2", {"CC": "clang"}, u1)
    assert base != cache.key(edited("CFLAGS: $CFLAGS -ffile-prefix-map=$SRC=/usr/src/musl\nstage3",
                                    "CFLAGS: $CFLAGS -O3 -ffile-prefix-map=$SRC=/usr/src/musl\nstage3"),
                             "stage2", {"CC": "clang"}, u1)
    stage3_edit = edited("  on_host: true\n", "  on_host: true\n  check: make check\n")
    assert base == cache.key(stage3_edit, "stage2", {"CC": "clang"}, u1)
    assert cache.key(musl, "stage3", {}, u1) != cache.key(stage3_edit, "stage3", {}, u1)
    assert base == cache.key(edited("expect: musl libc", "expect: musl"), "stage2", {"CC": "clang"}, u1)


def test_a_stage_patch_counts_for_its_stage_only(tmp_path):
    """llvm's stage 3 patch (clang's multiarch for musl) is applied in stage 3 alone: it keeps stage
    2's key, so adding it did not cost stage 2's hour of LLVM."""
    cache = BuildCache(tmp_path)
    llvm = load_recipe(ROOT / "recipes" / "llvm" / "recipe.yaml")
    plain = replace(llvm, stage_patches={})
    assert llvm.patches_for("stage2") == () and [p.name for p in llvm.patches_for("stage3")] == ["0001-musl-multiarch.patch"]
    assert cache.key(llvm, "stage2", {}, {}) == cache.key(plain, "stage2", {}, {})
    assert cache.key(llvm, "stage3", {}, {}) != cache.key(plain, "stage3", {}, {})


def test_put_then_get_and_partial_entries_are_ignored(tmp_path):
    cache = BuildCache(tmp_path / "cache")
    dest = tmp_path / "dest"
    (dest / "usr" / "bin").mkdir(parents=True)
    (dest / "usr" / "bin" / "tool").write_text("x")
    (dest / "usr" / "bin" / "alias").symlink_to("tool")
    size = SizeRecord("stage2", "tool", "1", 1, 2, 3, 1, 0)
    assert cache.get("k") is None
    (tmp_path / "cache" / "k.partial-1").mkdir(parents=True)  # what an interrupted put leaves
    assert cache.get("k") is None
    cache.put("k", dest, size)
    got_dest, got_size = cache.get("k")
    assert got_size == size and (got_dest / "usr" / "bin" / "alias").readlink().as_posix() == "tool"
    assert cache.build_log("k") is None  # none was given
    (tmp_path / "build.log").write_text("clang -O2 -c tool.c\n")
    cache.put("k2", dest, size, "run-1", tmp_path / "build.log")
    assert cache.build_log("k2").read_text() == "clang -O2 -c tool.c\n" and cache.built_by("k2") == "run-1"


def test_stage_key_needs_a_completed_stage(tmp_path):
    (tmp_path / "stage1").mkdir()
    with pytest.raises(SerpentError, match="stage1 has not completed"):
        stage_key(tmp_path / "stage1")
    (tmp_path / "stage1" / COMPLETE).write_text(json.dumps({"key": "abc"}))
    assert stage_key(tmp_path / "stage1") == "abc"


HOLDER = textwrap.dedent("""
    import sys, time
    from serpentlib.build.lock import lock_work_dir
    lock_work_dir(sys.argv[1], "test holder")
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_second_run_on_the_same_work_dir_refuses_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SerpentError, match=rf"in use by another run \(pid {holder.pid}, test holder"):
            lock_work_dir(tmp_path / ".." / tmp_path.name)
    finally:
        holder.kill()
        holder.wait()
    lock_work_dir(tmp_path)  # the holder is gone: its lock went with it


def test_a_look_at_the_lock_names_its_holder_and_takes_nothing(tmp_path):
    """What `serpent shell` warns with: a run holds the work directory, whose roots may be changing."""
    from serpentlib.build.lock import holder as holder_of
    assert holder_of(tmp_path) is None  # never locked
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        got = holder_of(tmp_path)
        assert got["pid"] == holder.pid and got["purpose"] == "test holder"
    finally:
        holder.kill()
        holder.wait()
    assert holder_of(tmp_path) is None  # the lock file stays, unheld
    lock_work_dir(tmp_path)  # and the look took nothing


def test_serpent_run_refuses_a_work_dir_in_use(tmp_path, capsys):
    from serpentlib.cli import main
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "work")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["run", "--profile", "mini", "--stage", "1", "--work-dir", str(tmp_path / "work"),
                     "--run-dir", str(tmp_path / "run")])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code == 2 and f"is in use by another run (pid {holder.pid}" in err and "another --work-dir" in err
    assert not (tmp_path / "run").exists(), "nothing ran"


@pytest.mark.build
def test_a_fully_cached_stage_replays_its_checks_naming_their_run_and_recheck_runs_them(tmp_path, root_required):
    """A real StageRun (with no package: every one of them comes from the cache) four times over
    one work directory: checked, replayed from that run, checked again (recheck), replayed from
    the recheck. Every stage starts from the real seed (stage 0), hence the build mark."""
    from serpentlib.records.metrics import load
    from serpentlib.rows import CheckRecord
    from serpentlib.build.sandbox import Sandbox
    from serpentlib.build.profile import StageParams, load_profile
    from serpentlib.stages.common import begin

    def stage(run_id, recheck=False):
        st = begin("stage1", StageParams(work_dir=str(tmp_path / "work"), run_dir=str(tmp_path / run_id), run_id=run_id,
                                         profile="test", seed=load_profile("mini").common["seed"], recheck=recheck))
        st.build(st.context(st.work, Sandbox(), {}), [])
        checks = st.cached_checks()
        if checks is None:
            checks = [CheckRecord("stage1", "probe", "root", True, f"checked in {run_id}")]
        st.finish(checks)
        return load(tmp_path / run_id, "checks").iloc[0]

    first, replayed = stage("a"), stage("b")
    assert (first["detail"], first["cached_from"]) == ("checked in a", "")
    assert (replayed["detail"], replayed["cached_from"]) == ("checked in a", "a")
    rechecked, replayed = stage("c", recheck=True), stage("d")
    assert (rechecked["detail"], rechecked["cached_from"]) == ("checked in c", "")
    assert (replayed["detail"], replayed["cached_from"]) == ("checked in c", "c")


def test_a_stage_starts_afresh_but_keeps_its_build_trees_for_resuming(tmp_path):
    """`begin` empties the stage's folder (roots, checks, markers) but not build/, whose trees
    each carry the stamp that says whether a rerun may resume them."""
    work = tmp_path / "stage2"
    (work / "root" / "usr").mkdir(parents=True)
    (work / "build" / "llvm" / "build").mkdir(parents=True)
    (work / "build" / "llvm" / "resume.json").write_text('{"key": "k", "done": ["extract"]}')
    (work / COMPLETE).write_text("{}")
    (work / "link").symlink_to("root")
    fresh(work, keep=BUILD_TREES)
    assert sorted(p.name for p in work.iterdir()) == ["build"]
    assert (work / "build" / "llvm" / "resume.json").is_file()


@pytest.mark.build
def test_a_kept_tree_stays_when_a_later_run_takes_its_package_from_the_cache(tmp_path, root_required):
    """The stage 3 LLVM tree the fixpoint compares objects with: kept after its build, and still
    there when the next run's stage installs LLVM from the cache (that run may be the fixpoint's)."""
    from serpentlib.build.profile import StageParams, load_profile
    from serpentlib.build.sandbox import Sandbox
    from serpentlib.stages.common import begin
    from .conftest import FIXTURES

    def stage(run_id, keep):
        st = begin("stage1", StageParams(work_dir=str(tmp_path / "work"), run_dir=str(tmp_path / run_id),
                                         run_id=run_id, profile="test", recipes_dir=str(FIXTURES / "recipes" / "good"),
                                         seed=load_profile("mini").common["seed"]))
        (st.work / "root").mkdir(parents=True, exist_ok=True)
        st.build(st.context(st.work / "root", Sandbox(), {}, keep_trees=frozenset(keep)), ["builds-slowly"])
        st.finish([])
        return st.hits

    tree = tmp_path / "work" / "stage1" / "build" / "builds-slowly"
    assert stage("a", {"builds-slowly"}) == 0 and json.loads((tree / "resume.json").read_text())["done"][-1] == "installed"
    assert stage("b", {"builds-slowly"}) == 1 and tree.is_dir()  # from the cache, the tree kept
    assert stage("c", set()) == 1 and not tree.exists()          # not kept: gone, as before


def test_a_damaged_cache_entry_is_built_again_with_a_warning_naming_it(tmp_path, caplog):
    """bash truncated in its entry, busybox's dest/ gone: neither may be installed as it is."""
    from serpentlib.rows import SizeRecord

    cache = BuildCache(tmp_path / "cache")
    for name in ("bash", "busybox"):
        dest = tmp_path / name / "usr" / "bin"
        dest.mkdir(parents=True)
        (dest / name).write_bytes(b"\x7fELF" + b"x" * 4096)
        cache.put(f"key-{name}", tmp_path / name, SizeRecord("stage2", name, "1", 0, 0, 4100, 1, 1), "run-a")
    assert cache.get("key-bash") is not None and cache.get("key-busybox") is not None
    (tmp_path / "cache" / "key-bash" / "dest" / "usr" / "bin" / "bash").write_bytes(b"\x7fELF" + b"x" * 60)
    shutil.rmtree(tmp_path / "cache" / "key-busybox" / "dest")
    with caplog.at_level("WARNING"):
        assert cache.get("key-bash") is None and cache.get("key-busybox") is None
    assert "the entry of bash" in caplog.text and "the entry of busybox" in caplog.text
    cache.put("key-bash", tmp_path / "bash", SizeRecord("stage2", "bash", "1", 0, 0, 4100, 1, 1), "run-b")
    assert cache.get("key-bash") is not None, "the next build fills the entry anew, whole"


def test_kept_checks_replay_only_onto_the_tree_they_were_made_on(tmp_path):
    cache = BuildCache(tmp_path / "cache")
    cache.put_checks("stage", [{"check": "elf-closure", "passed": True}], root_digest="tree-a")
    assert cache.get_checks("stage", "tree-a") == [{"check": "elf-closure", "passed": True}]
    assert cache.get_checks("stage", "tree-b") is None


def test_files_kept_with_checks_come_back_with_them(tmp_path):
    """A record that names a listing (the fixpoint's) names a file the replaying run has too."""
    listing = tmp_path / "run-a" / "fixpoint-llvm.csv"
    listing.parent.mkdir()
    listing.write_text("path,root,rebuild\n/usr/bin/clang-14,file 0755 ab,file 0755 ab\n")
    cache = BuildCache(tmp_path / "cache")
    cache.put_checks("fixpoint", [{"check": "fixed-point"}], root_digest="llvm-a", files=[listing])
    later = tmp_path / "run-b"
    later.mkdir()
    assert cache.get_checks("fixpoint", "llvm-a", files=later) == [{"check": "fixed-point"}]
    assert (later / "fixpoint-llvm.csv").read_text() == listing.read_text()


def test_an_inherited_work_lock_variable_does_not_skip_the_lock(tmp_path):
    """SERPENT_WORK_LOCK set by hand (or left in an environment) names no run that holds the lock:
    a second run must still refuse while the first holds it."""
    work = tmp_path / "work"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from serpentlib.build.lock import lock_work_dir
        lock_work_dir({str(work)!r}, "the first run"); print("held", flush=True); time.sleep(30)""")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for forged in (str(work.resolve()), f"{work.resolve()}:{holder.pid}", f"{work.resolve()}:1"):
            probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
                from serpentlib.build.lock import lock_work_dir
                from serpentlib.errors import SerpentError
                try:
                    lock_work_dir({str(work)!r}, "a second run"); print("took it")
                except SerpentError as exc:
                    print("refused:", exc)""")], capture_output=True, text=True,
                env={**__import__("os").environ, "SERPENT_WORK_LOCK": forged})
            assert probe.stdout.startswith("refused: the work directory") and "the first run" in probe.stdout, forged
    finally:
        holder.kill()
