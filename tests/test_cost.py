"""What a run's result cost: a build interrupted, resumed and then taken from the cache is counted
whole, over the runs of its own work directory only; a run missing from the store shows."""

import sqlite3

import pytest

from serpentlib.records import cost
from serpentlib.cli import main
from serpentlib.records.history import SCHEMA_VERSION, History
from serpentlib.records.metrics import Recorder
from serpentlib.records.report import write_index
from serpentlib.records.run import RunInfo
from serpentlib.build.sandbox import PhaseRecord


def a_run(base, run_id, minute, phases, work_dir="/w/full", package="llvm", cached_from=""):
    """A run directory whose stage 3 worked on one package: `phases` are (phase, wall s, exit code)."""
    run_dir = base / run_id
    rec = Recorder(run_dir, run_id, "full")
    for phase, wall, code in phases:
        rec.add(PhaseRecord("stage3", package, "14", phase, "", "", wall, wall * 2, 1.0, 1000 * wall, code, "",
                            origin="cached" if cached_from else "built", from_run=cached_from))
    RunInfo(run_id=run_id, profile="full", run_dir=str(run_dir), work_dir=work_dir, host={},
            started=f"2026-01-01T00:{minute:02d}:00+00:00", stages={"3": "passed"}).save()
    return run_dir


@pytest.fixture
def store(tmp_path):
    """Three runs built one LLVM (started, resumed twice); a run in another work directory stopped
    an LLVM build of its own in between; a fifth run takes the result from the build cache."""
    runs = [a_run(tmp_path, "a", 1, [("fetch", 1, 0), ("extract", 40, 0), ("configure", 30, 0), ("build", 600, 130)]),
            a_run(tmp_path, "x", 2, [("fetch", 1, 0), ("resume", 0, 0), ("build", 5000, 130)], work_dir="/elsewhere"),
            a_run(tmp_path, "b", 3, [("fetch", 1, 0), ("resume", 0, 0), ("build", 400, 130)]),
            a_run(tmp_path, "c", 4, [("fetch", 1, 0), ("resume", 0, 0), ("build", 3000, 0), ("install", 20, 0)])]
    with History(tmp_path / "m.sqlite") as h:
        for run_dir in runs:
            h.ingest(run_dir)
    return tmp_path


def test_a_resumed_build_costs_the_work_of_every_run_on_its_tree(store):
    with History(store / "m.sqlite") as h:
        spent = cost.result_cost(store / "c", h)
    row = spent.iloc[0]
    assert (row["origin"], row["runs"], row["run_ids"], bool(row["complete"])) == ("built", 3, "a b c", True)
    assert row["wall_s"] == 1 + 40 + 30 + 600 + 1 + 400 + 1 + 3000 + 20  # not run x's 5000 s: another tree
    assert row["user_s"] == 2 * row["wall_s"] and row["max_rss_kb"] == 3_000_000


def test_a_cached_package_costs_what_the_runs_that_built_it_spent_and_the_report_says_so(store):
    cached = a_run(store, "d", 5, [("cached", 0.2, 0)], cached_from="c")
    assert main(["report", str(cached), "--db", str(store / "m.sqlite")]) == 0
    spent = cost.load(cached)
    assert spent["run_ids"].tolist() == ["a b c"] and spent["wall_s"].tolist() == [4093.0]
    page = (cached / "index.html").read_text()
    assert "What the result cost" in page and "68 min wall, 2.3 h CPU" in page and "over 3 run(s)" in page
    assert "Incomplete" not in page and 'href="cost.csv"' in page


def test_the_report_of_a_result_lists_the_runs_it_took_and_plots_their_real_builds(store):
    """The last run took everything from the cache: its page still shows the three runs that
    built LLVM, what each did, and a plot of the real builds per run, apart from its own timings."""
    cached = a_run(store, "d", 5, [("cached", 0.2, 0)], cached_from="c")
    (store / "b" / "run.json").write_text((store / "b" / "run.json").read_text().replace('"failure": ""',
                                                                                        '"failure": "stopped by SIGTERM"'))
    assert main(["report", str(cached), "--db", str(store / "m.sqlite")]) == 0
    runs = cost.load_runs(cached).set_index("run_id")
    assert list(runs.index) == ["a", "b", "c", "d"], "the runs behind the result, oldest first, this one last"
    assert runs.loc["b", "why"] == "stopped by SIGTERM" and runs.loc["b", "build_wall_s"] == 401.0
    assert runs.loc["c", "built"] == "stage3/llvm" and runs.loc["d", "built"] == "nothing (all from the build cache)"
    builds = cost.load_builds(cached)
    assert builds["wall_s"].sum() == 4093.0 and set(builds["run_id"]) == {"a", "b", "c"}
    page = (cached / "index.html").read_text()
    took = page.split("<h2>The runs it took</h2>")[1].split("<h2>")[0]
    assert "stopped by SIGTERM" in took and 'href="runs.csv"' in took and 'href="builds.csv"' in took
    assert 'alt="stage3: the real builds behind the result, by run; x: wall time of the real builds (hours); rows: llvm; ' \
           'key: a, b, c"' in took
    assert page.index("<h2>The runs it took</h2>") < page.index("<h2>This run's own timings</h2>")


def test_a_chain_that_leaves_the_store_is_marked_incomplete(store, tmp_path):
    with History(store / "m.sqlite") as h:
        h.conn.execute("DELETE FROM phases WHERE run_id = 'a'")
        h.conn.commit()
        resumed = cost.result_cost(store / "c", h)
        lost = cost.result_cost(a_run(tmp_path, "e", 6, [("cached", 0.2, 0)], cached_from="gone"), h)
    assert not resumed["complete"].iloc[0] and resumed["run_ids"].iloc[0] == "b c"
    assert not lost["complete"].iloc[0] and lost["wall_s"].iloc[0] == 0
    with History(store / "m.sqlite") as h:
        cost.write(tmp_path / "e", h)
    page = write_index(tmp_path / "e").read_text()
    assert "Incomplete" in page and "llvm" in page


def test_a_version_3_store_learns_each_runs_work_directory_from_its_run_json(store):
    db = store / "m.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN work_dir")
        conn.execute("PRAGMA user_version = 3")
    (store / "b" / "run.json").unlink()  # a run directory since removed: its work directory is not known
    with History(db) as h:
        assert h.version == 3 and SCHEMA_VERSION >= 4
        dirs = dict(zip(h.runs()["run_id"], h.runs()["work_dir"]))
    assert dirs == {"a": "/w/full", "x": "/elsewhere", "b": "", "c": "/w/full"}


def test_a_package_another_stage_of_the_same_run_built_is_counted_once(tmp_path):
    """Stage 3's intermediate musl is stage 2's build, taken from the cache in the same run: its
    work is stage 2's, and stage 3 adds nothing (it used to be an incomplete chain)."""
    run_dir = tmp_path / "r"
    rec = Recorder(run_dir, "r", "mini")
    rec.add(PhaseRecord("stage2", "musl", "1.2.3", "build", "", "", 50.0, 90.0, 5.0, 1000, 0, ""))
    rec.add(PhaseRecord("stage3", "musl", "1.2.3", "cached", "", "", 0.2, 0.1, 0.0, 0, 0, "",
                        origin="cached", from_run="r"))
    RunInfo(run_id="r", profile="mini", run_dir=str(run_dir), work_dir="/w", host={},
            started="2026-01-01T00:00:00+00:00", stages={"2": "passed", "3": "passed"}).save()
    with History(tmp_path / "m.sqlite") as h:
        h.ingest(run_dir)
        spent = cost.result_cost(run_dir, h).set_index(["stage", "package"])
    assert spent.at[("stage2", "musl"), "wall_s"] == 50.0 and spent.at[("stage2", "musl"), "origin"] == "built"
    assert spent.at[("stage3", "musl"), "origin"] == "shared" and spent.at[("stage3", "musl"), "wall_s"] == 0
    assert spent["complete"].all()


def test_the_result_line_says_at_least_when_part_of_the_work_is_not_in_the_store():
    import pandas as pd
    from serpentlib.records.report import result_line
    spent = pd.DataFrame([{"stage": "stage3", "package": "llvm", "origin": "cached", "wall_s": 600.0, "user_s": 900.0,
                           "sys_s": 60.0, "max_rss_kb": 1, "runs": 2, "run_ids": "a b", "complete": False},
                          {"stage": "stage3", "package": "zlib", "origin": "built", "wall_s": 60.0, "user_s": 60.0,
                           "sys_s": 0.0, "max_rss_kb": 1, "runs": 1, "run_ids": "b", "complete": True}])
    line = result_line(spent)
    assert "took 11 min of building (17 min CPU) at least (part of the work behind 1 package(s)" in line, line
    assert "at least" not in result_line(spent.assign(complete=True))


def test_a_stage_page_shows_the_build_work_behind_its_result(store):
    """The notebook ran before the cost was known; its rendered page gets it, apart from its own timings."""
    import nbformat
    cached = a_run(store, "d", 5, [("cached", 0.2, 0)], cached_from="c")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Stage 3")]),
                   cached / "stage3-chroot.ipynb")
    assert main(["report", str(cached), "--db", str(store / "m.sqlite")]) == 0
    page = (cached / "stage3-chroot.html").read_text()
    work = page.split("<h2>The build work behind this stage's result</h2>")[1]
    assert "<td>llvm</td><td>cached</td><td>68.2</td>" in work and "<td>a b c</td>" in work, work[:2000]
    assert 'alt="stage3: the real builds behind the result, by run' in work and 'href="builds.csv"' in work
