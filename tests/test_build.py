"""One package's phases: what a failing phase done in this process records."""

import json
from pathlib import Path
from dataclasses import replace

import pandas as pd
import pytest

from serpentlib.build import progress
from serpentlib.build.phases import PackageBuild, StageContext
from serpentlib.errors import BuildError
from serpentlib.records.history import History
from serpentlib.build.recipes import load_recipe
from serpentlib.build.sandbox import Sandbox
from serpentlib.build.sources import SourceStore

from .conftest import FIXTURES


def test_a_host_phase_failing_with_any_exception_is_recorded_failed_with_its_traceback(tmp_path):
    """Restoring a cached build into a root whose /usr is a file: merging fails with an OSError
    (not the project's own error). The phase's record says it failed; its log has the traceback."""
    cached = tmp_path / "cached"
    (cached / "usr" / "bin").mkdir(parents=True)
    (cached / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "usr").write_text("a file where the package needs a directory\n")
    records = []
    ctx = StageContext(stage="stage3", work=tmp_path / "work", install_root=root, store=SourceStore(tmp_path / "store"),
                       sandbox=Sandbox(), logs=tmp_path / "logs", on_record=records.append)
    build = PackageBuild(load_recipe(FIXTURES / "recipes" / "good" / "broken-build" / "recipe.yaml"), ctx)
    try:
        build.restore(cached)
    except OSError:
        pass
    else:
        raise AssertionError("merging over a file should have failed")
    assert [(r.phase, r.exit_code != 0) for r in records] == [("cached", True)], records
    log = (tmp_path / "logs" / "broken-build" / "cached.log").read_text()
    assert "Traceback" in log and "FileExistsError" in log and "merge_tree" in log, log


def _context(tmp_path, records):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return StageContext(stage="stage2", work=tmp_path / "work", install_root=root,
                        store=SourceStore(tmp_path / "store"), sandbox=Sandbox(), logs=tmp_path / "logs",
                        on_record=records.append)


def test_a_failed_build_resumes_its_tree_with_the_same_key_and_starts_afresh_with_another(tmp_path):
    """The first attempt fails in build; a second with the same key skips extract and configure
    (one `resume` record instead) and runs build again in the same tree; another key starts over."""
    recipe = load_recipe(FIXTURES / "recipes" / "good" / "resumes" / "recipe.yaml")
    first: list = []
    with pytest.raises(BuildError):
        PackageBuild(recipe, _context(tmp_path, first), key="k1").run()
    assert [r.phase for r in first] == ["fetch", "extract", "configure", "build"], first
    second: list = []
    PackageBuild(recipe, _context(tmp_path, second), key="k1").run()
    assert [r.phase for r in second][:3] == ["fetch", "resume", "build"], second
    installed = tmp_path / "root" / "usr" / "share" / "resumes"
    assert (installed / "configure-runs").read_text() == "configured\n"
    assert (installed / "build-runs").read_text() == "built\nbuilt\n"
    assert "k1" in (tmp_path / "logs" / "resumes" / "resume.log").read_text()
    # A failed attempt under another key is not resumed by k3: its tree is made anew.
    with pytest.raises(BuildError):
        PackageBuild(recipe, _context(tmp_path, []), key="k2").run()
    third: list = []
    with pytest.raises(BuildError):
        PackageBuild(recipe, _context(tmp_path, third), key="k3").run()
    assert "extract" in [r.phase for r in third] and "resume" not in [r.phase for r in third]


def test_ninja_progress_and_the_time_left(tmp_path):
    log = tmp_path / "build.log"
    assert progress.ninja_progress(log) is None
    log.write_text("# start\n[1/400] Building CXX object a.o\n[100/400] Linking CXX executable bin/x\n")
    assert progress.ninja_progress(log) == (100, 400)
    # From earlier runs: the steps left at their median pace; else at this run's pace.
    assert progress.estimate_left(100, 400, 60.0, [2.0, 4.0, 3.0]) == (900.0, "from 3 earlier run(s)")
    assert progress.estimate_left(100, 400, 60.0, []) == (180.0, "from the pace so far")
    assert "100/400 steps (25%)" in progress.describe("stage2 llvm build", 100, 400, 60.0, [])


def test_the_pace_of_earlier_runs_counts_the_steps_each_did(tmp_path):
    """A build that resumed did only the steps left: its pace is its wall time over those, so a
    resumed build's time left is not taken for a whole build's. Stopped builds and lost logs give none."""
    logs = {}
    for name, text in {"whole": "[1/400] a\n[400/400] b\n", "resumed": "[1/100] a\n[100/100] b\n",
                       "stopped": "[1/400] a\n[50/400] b\n"}.items():
        logs[name] = tmp_path / f"{name}.log"
        logs[name].write_text(text)
    rows = [("whole", 800.0, 0), ("resumed", 300.0, 0), ("stopped", 100.0, 130), ("gone", 500.0, 0)]
    phases = pd.DataFrame([{"run_id": n, "profile": "full", "stage": "stage3", "package": "llvm", "version": "14",
                            "phase": "build", "wall_s": w, "exit_code": code, "origin": "built",
                            "log": str(logs.get(n, tmp_path / "gone.log"))} for n, w, code in rows])
    with History(tmp_path / "m.sqlite") as h:
        h.add_frames(pd.DataFrame({"run_id": [n for n, *_ in rows]}), phases=phases)
    paces = progress.earlier_paces("stage3", "llvm", "build", tmp_path / "m.sqlite")
    assert sorted(paces) == [2.0, 3.0]
    assert progress.estimate_left(10, 110, 30.0, paces) == (250.0, "from 2 earlier run(s)")


def test_the_time_left_weighs_the_outputs_left_by_what_they_took_in_an_earlier_build(tmp_path):
    """LLVM's steps are far from equal (clang's Sema files take minutes, a tablegen seconds): the
    time left is the earlier build's times of the outputs this tree has not built yet, over the
    jobs. The earlier build's ninja log is the one kept beside its build log; one without it gives none."""
    def ninja_log(path, steps):  # ninja's own format, v5: start and end in ms, mtime, output, hash
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# ninja log v5\n" + "".join(f"{a}\t{b}\t0\t{out}\tfeed\n" for out, a, b in steps))
    earlier = tmp_path / "run-e" / "logs" / "stage3" / "llvm"
    ninja_log(earlier / "ninja_log.log", [("Sema.o", 0, 240000), ("Lex.o", 0, 20000), ("tblgen.inc", 0, 2000),
                                          ("Lex.o", 30000, 50000), ("bin/clang", 240000, 300000)])
    (earlier / "build.log").write_text("[5/5] Linking CXX executable bin/clang\n")
    (tmp_path / "run-f").mkdir()
    phases = pd.DataFrame([{"run_id": run, "profile": "full", "stage": "stage3", "package": "llvm", "version": "14",
                            "phase": "build", "wall_s": 300.0, "exit_code": 0, "origin": "built", "log": str(log)}
                           for run, log in (("e", earlier / "build.log"), ("f", tmp_path / "run-f" / "build.log"))])
    with History(tmp_path / "m.sqlite") as h:
        h.add_frames(pd.DataFrame({"run_id": ["e", "f"]}), phases=phases)
    steps = progress.earlier_steps("stage3", "llvm", "build", tmp_path / "m.sqlite")  # f is newer, but has no ninja log
    assert steps == {"Sema.o": 240.0, "Lex.o": 20.0, "tblgen.inc": 2.0, "bin/clang": 60.0}
    tree = tmp_path / "tree" / ".ninja_log"
    assert progress.work_left(steps, tree, 2) is None  # the build has not started
    ninja_log(tree, [("tblgen.inc", 0, 1500), ("Lex.o", 0, 18000)])
    assert progress.work_left(steps, tree, 2) == 150.0  # Sema.o and the link: 300 s of steps, 2 at once
    assert progress.estimate_left(2, 4, 20.0, [1.0], 150.0) == (150.0, "from an earlier build's step times")
    assert "about 2 min left (from an earlier build's step times)" in progress.describe("llvm", 2, 4, 20.0, [1.0], 150.0)
    assert progress.earlier_steps("stage3", "zlib", "build", tmp_path / "m.sqlite") == {}


def test_a_build_with_no_earlier_pace_of_its_own_takes_the_one_it_is_paced_like(tmp_path, monkeypatch):
    """The fixpoint's rebuild of LLVM has never finished before: its time left comes from LLVM's."""
    asked = []
    monkeypatch.setattr(progress, "earlier_paces", lambda stage, name, phase: asked.append(name) or [])
    recipe = load_recipe(FIXTURES / "recipes" / "good" / "resumes" / "recipe.yaml")
    with pytest.raises(BuildError):
        PackageBuild(recipe, _context(tmp_path, []), key="k1", paced_like="llvm").run()
    assert asked == ["resumes", "llvm"]
    asked.clear()
    with pytest.raises(BuildError):
        (tmp_path / "other").mkdir()
        PackageBuild(recipe, _context(tmp_path / "other", []), key="k1").run()
    assert asked == ["resumes"]


def test_a_kept_tree_stays_after_the_build_and_when_the_package_later_comes_from_the_cache(tmp_path):
    """The stage's LLVM tree stays for the fixpoint's object compare: stamped `installed`, and not
    removed when a later run installs the package from the cache; other trees go as before."""
    recipe = load_recipe(FIXTURES / "recipes" / "good" / "resumes" / "recipe.yaml")
    tree = tmp_path / "work" / "build" / "resumes"
    kept = replace(_context(tmp_path, []), keep_trees=frozenset({"resumes"}))
    with pytest.raises(BuildError):
        PackageBuild(recipe, kept, key="k1").run()
    PackageBuild(recipe, kept, key="k1").run()
    assert json.loads((tree / "resume.json").read_text())["done"][-1] == "installed"
    assert (tree / "build" / "build-runs").is_file()
    cached = tmp_path / "cache" / "dest"
    (cached / "usr" / "share").mkdir(parents=True)
    PackageBuild(recipe, kept, key="k1").restore(cached)  # a later run, from the cache
    assert (tree / "build" / "build-runs").is_file()
    PackageBuild(recipe, _context(tmp_path, []), key="k1").restore(cached)
    assert not tree.exists()


def test_merging_never_writes_through_a_link_out_of_the_root(tmp_path):
    """One package's DESTDIR holds usr/share/doc -> <a host directory>; the next one's
    usr/share/doc/notes must not land there. The root's own links (lib -> usr/lib) still merge."""
    from serpentlib.build.phases import merge_tree
    from serpentlib.errors import ContainmentError

    root, host = tmp_path / "root", tmp_path / "host"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    host.mkdir()
    (host / "notes").write_text("the host's own\n")
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "usr" / "share").mkdir(parents=True)
    (first / "usr" / "share" / "doc").symlink_to(host)
    (first / "lib").mkdir()
    (first / "lib" / "ld.so").write_text("loader\n")
    merge_tree(first, root)
    assert (root / "usr" / "lib" / "ld.so").read_text() == "loader\n", "the root's own link is followed"
    (second / "usr" / "share" / "doc").mkdir(parents=True)
    (second / "usr" / "share" / "doc" / "notes").write_text("planted\n")
    with pytest.raises(ContainmentError, match=f"usr/share/doc/notes would be written through /usr/share/doc -> {host}"):
        merge_tree(second, root)
    assert (host / "notes").read_text() == "the host's own\n"


def test_on_host_naming_compilers_holds_for_those_alone(tmp_path):
    """linux says `on_host: [tcc]`: mini's tcc cannot build it, so stage 1's toolchain does on the
    host; with clang the stage 3 root's own compiler builds it in the chroot (a non-empty list
    once counted as `true` for every compiler, and the full profile's kernel was built on the host)."""
    from serpentlib.paths import RECIPES
    linux = load_recipe(RECIPES / "linux" / "recipe.yaml")
    ctx = replace(_context(tmp_path, []), stage="stage3", host_sandbox=Sandbox())
    assert PackageBuild(linux, replace(ctx, compiler="tcc")).on_host
    assert not PackageBuild(linux, replace(ctx, compiler="clang")).on_host


def test_a_build_names_the_compiler_its_cc_is_where_it_runs(tmp_path):
    """The build's own $CC, asked in its own sandbox: version line, path, whose (here the host's)."""
    recipe = load_recipe(FIXTURES / "recipes" / "good" / "resumes" / "recipe.yaml")
    ctx = replace(_context(tmp_path, []), env={"CC": "python3 -I"})
    said = PackageBuild(recipe, ctx).compiler()
    real = Path("/usr/bin/python3").resolve()
    assert said.startswith("Python 3.") and said.endswith(f"({real}: the host's)"), said
    # A link is followed to the compiler it leads to (stage 3's /usr/bin/clang leads to /serpent's at first)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "cc").symlink_to(real)
    linked = PackageBuild(recipe, replace(ctx, env={"CC": str(tmp_path / "bin" / "cc")})).compiler()
    assert linked.endswith(f"({real}: the host's)"), linked
    assert PackageBuild(recipe, replace(ctx, env={"CC": "no-such-cc"})).compiler() == "unknown: no no-such-cc on PATH"
