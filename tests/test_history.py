"""The metrics store: run ids, ingesting twice, refusing a different run under a known id,
schema versions and migrations, built and cached packages kept apart."""

import csv
import json
import re
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from serpentlib.records import metrics
from serpentlib.records.compare import compare, load_run
from serpentlib.errors import SerpentError
from serpentlib.records.history import SCHEMA_VERSION, History
from serpentlib.build.profile import load_profile
from serpentlib.records.run import new_run_id

from .conftest import FIXTURES, PACKAGES, explore, make_run, serpent


def dump(db):
    """Every row of every table, with its rowid: a replaced row shows as changed."""
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT rowid, * FROM {t} ORDER BY rowid").fetchall()
                for t in ("runs", *metrics.TABLES)}


def old_store(path):
    """A store written before stores had a schema version (the fixture holds its CREATE statements)."""
    with sqlite3.connect(path) as conn:
        conn.executescript((FIXTURES / "history" / "metrics-v1.sql").read_text())
    return path


def test_run_ids_are_unique_and_not_the_folder_name():
    ids = {new_run_id("mini") for _ in range(50)}
    assert len(ids) == 50 and all(re.fullmatch(r"\d{8}-\d{6}-mini-[0-9a-f]{8}", i) for i in ids)


def test_runs_in_folders_of_the_same_name_are_both_kept(tmp_path):
    a = make_run(tmp_path, new_run_id("mini"), folder="A/run")
    b = make_run(tmp_path, new_run_id("mini"), {**PACKAGES, "bash": 50.0}, folder="B/run")
    with History(tmp_path / "m.sqlite") as h:
        h.ingest(a)
        h.ingest(b)
        assert len(h.runs()) == 2
        for run_dir in (a, b):
            run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
            for table in metrics.TABLES:
                assert len(h.table(table, [run_id])) == len(metrics.load(run_dir, table)) > 0


def test_ingesting_the_same_run_twice_changes_nothing(tmp_path, capsys):
    from serpentlib.cli import main

    db = tmp_path / "m.sqlite"
    run_dir = make_run(tmp_path, new_run_id("mini"), folder="run")
    with History(db) as h:
        assert h.ingest(run_dir).added
    before = dump(db)
    with History(db) as h:
        assert not h.ingest(run_dir).added
    assert main(["ingest", str(run_dir), "--db", str(db)]) == 0
    assert "already there, unchanged" in capsys.readouterr().out
    moved = run_dir.rename(tmp_path / "elsewhere")  # the same run from another place: still the same run
    assert main(["ingest", str(moved), "--db", str(db)]) == 0
    assert dump(db) == before


def test_a_different_run_under_a_known_id_is_refused_and_nothing_is_lost(tmp_path):
    db = tmp_path / "m.sqlite"
    first = make_run(tmp_path, "20260101-000000-mini-0000abcd", folder="A/run")
    other = make_run(tmp_path, "20260101-000000-mini-0000abcd", {**PACKAGES, "bash": 50.0}, folder="B/run")
    with History(db) as h:
        h.ingest(first)
    before = dump(db)
    with History(db) as h, pytest.raises(SerpentError) as err:
        h.ingest(other)
    assert "already in" in err.value.message and "phases" in err.value.message and str(first) in err.value.message
    assert "--replace" in err.value.hint
    assert dump(db) == before
    with History(db) as h:
        assert h.ingest(other, replace=True).added
        assert h.trend("stage2", "bash")["value"].round(1).tolist() == [50.0]


def test_a_directory_two_runs_wrote_into_gives_each_its_own_rows(tmp_path):
    run_dir = make_run(tmp_path, "first", folder="run")
    make_run(tmp_path, "second", {**PACKAGES, "bash": 50.0}, folder="run")  # appends; run.json names "second"
    with History(tmp_path / "m.sqlite") as h:
        assert h.ingest(run_dir).run_id == "second"
        assert len(h.table("phases")) == len(PACKAGES) * 3
        assert h.trend("stage2", "bash")["value"].round(1).tolist() == [50.0]


def test_an_old_store_is_migrated_on_open_and_its_runs_keep_their_ids(tmp_path):
    db = old_store(tmp_path / "old.sqlite")
    with History(db) as h:
        assert h.version == 1  # what it was
        assert h.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert list(h.runs()["run_id"]) == ["run", "restore"]
        phases = h.table("phases")
        assert len(phases) == 3 and len(h.table("sizes")) == 2 and len(h.table("checks")) == 2
        assert dict(zip(phases["phase"], phases["origin"])) == {"configure": "built", "build": "built",
                                                                "cached": "cached"}
        assert h.trend("stage3", "zlib")["value"].tolist() == [12.0]  # the cached run is apart
        assert h.trend("stage3", "zlib", origin="cached")["run_id"].tolist() == ["restore"]
        # A new run goes in beside them: the insert an unmigrated store refused.
        run_dir = make_run(tmp_path, new_run_id("mini"), {"zlib": 11.0}, stage="stage3", folder="new/run")
        assert h.ingest(run_dir).added
        assert sorted(h.trend("stage3", "zlib")["value"].round(1)) == [11.0, 12.0]
    with History(db) as h:
        assert h.version == SCHEMA_VERSION and len(h.runs()) == 3


def test_a_version_5_store_learns_sizes_compiler_column(tmp_path):
    """Schema 5 first shipped without sizes.compiler (a store here had it so); a run with the
    column then could not be added. Version 6 adds it to such a store."""
    db = tmp_path / "v5.sqlite"
    History(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE sizes DROP COLUMN compiler")
        conn.execute("PRAGMA user_version = 5")
    with History(db) as h:
        assert h.version == 5 and "compiler" in h.table("sizes").columns
        assert h.ingest(make_run(tmp_path, "after", {"zlib": 1.0})).added


def test_a_store_from_a_newer_serpentlib_is_refused(tmp_path):
    db = tmp_path / "new.sqlite"
    History(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SerpentError, match="schema version") as err:
        History(db)
    assert "newer serpentlib" in err.value.hint


def test_the_store_has_every_column_the_records_have(tmp_path):
    with History(tmp_path / "m.sqlite") as h:
        for table in metrics.TABLES:
            assert [r[1] for r in h.conn.execute(f"PRAGMA table_info({table})")] == metrics.columns(table)


def test_a_column_the_store_does_not_know_is_a_clear_error(tmp_path):
    run_dir = make_run(tmp_path, new_run_id("mini"), folder="run")
    rows = list(csv.DictReader(open(run_dir / "phases.csv")))
    with open(run_dir / "phases.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "energy_j"])
        writer.writeheader()
        writer.writerows({**r, "energy_j": 1} for r in rows)
    with History(tmp_path / "m.sqlite") as h:
        with pytest.raises(SerpentError, match="energy_j") as err:
            h.ingest(run_dir)
        assert "newer serpentlib" in err.value.hint
        assert h.runs().empty and h.table("phases").empty


def test_a_cached_rerun_is_no_speed_up(tmp_path):
    a = make_run(tmp_path, new_run_id("mini"), folder="A/run")
    a_id = json.loads((a / "run.json").read_text())["run_id"]
    b = make_run(tmp_path, new_run_id("mini"), folder="B/run", cached_from=a_id)
    table = compare(load_run(a), load_run(b)).set_index("package")
    assert not table["flag"].str.contains("faster").any(), table
    assert table["time_delta_%"].isna().all()
    assert (table["origin"] == f"B cached (built by {a_id})").all()
    with History(tmp_path / "m.sqlite") as h:
        h.ingest(a)
        h.ingest(b)
        assert h.trend("stage2", "bash")["value"].round(1).tolist() == [38.0]
        both = h.trend("stage2", "bash", origin=None)
        assert both["origin"].tolist() == ["built", "cached"] and both["from_run"].tolist() == ["", a_id]


def test_package_times_say_built_or_cached(tmp_path):
    b = make_run(tmp_path, "b", cached_from="a")
    table = metrics.package_times(metrics.load(b, "phases"))
    assert set(table["origin"]) == {"cached (built by a)"}


# -- real runs: a package built by one run, taken from the build cache by the next --------------
@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two real runs of a tiny profile on one work directory, in folders both called `run`: the
    first builds `builds-slowly` (4 s), the second takes it from the cache. Stage 1's toolchain
    checks fail (there is no toolchain), which ends both runs; the build cache keeps the build."""
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox's namespaces")
    base = tmp_path_factory.mktemp("two")
    profile = base / "tiny.yaml"
    profile.write_text(f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\nstages:\n  1:\n    packages: [builds-slowly]\n"
                       + yaml.safe_dump({"seed": load_profile("mini").common["seed"]}))
    db = base / "metrics.sqlite"
    runs = []
    for name in ("A", "B"):
        proc = serpent("run", "--profile", str(profile), "--stage", "1", "--run-dir", str(base / name / "run"),
                       "--work-dir", str(base / "work"), "-q", db=db)
        assert "stage 1 failed" in proc.stderr, proc.stderr[-2000:]
        runs.append(base / name / "run")
    return runs, db


def run_id(run_dir):
    return json.loads((run_dir / "run.json").read_text())["run_id"]


@pytest.mark.build
def test_real_runs_in_folders_of_the_same_name_are_both_in_the_store(two_runs):
    (a, b), db = two_runs
    assert run_id(a) != run_id(b)
    with History(db) as h:
        assert set(h.runs()["run_id"]) == {run_id(a), run_id(b)}
        for run_dir in (a, b):
            for table in metrics.TABLES:
                assert len(h.table(table, [run_id(run_dir)])) == len(metrics.load(run_dir, table)) > 0, table
    before = dump(db)
    again = serpent("ingest", str(a), str(b), db=db)
    assert again.returncode == 0 and again.stdout.count("already there, unchanged") == 2, again.stdout
    assert dump(db) == before


@pytest.mark.build
def test_a_cached_package_names_the_run_that_built_it(two_runs):
    (a, b), _ = two_runs
    phases = {d: metrics.load(d, "phases") for d in (a, b)}
    assert set(phases[a]["origin"]) == {"built"} and "build" in set(phases[a]["phase"])
    cached = phases[b]
    assert cached["phase"].tolist() == ["cached"] and cached["origin"].tolist() == ["cached"]
    assert cached["from_run"].tolist() == [run_id(a)]
    page = (b / "index.html").read_text()
    assert "Taken from the build cache" in page and run_id(a) in page
    assert f"cached (built by {run_id(a)})" in (b / "stage1-toolchain.ipynb").read_text()  # its time table


@pytest.mark.build
def test_a_real_cached_rerun_is_no_speed_up_in_compare(two_runs, tmp_path):
    (a, b), db = two_runs
    done = serpent("compare", str(a), str(b), "--html", str(tmp_path / "c.html"), db=db)
    assert done.returncode == 0, done.stderr
    assert "faster" not in done.stdout and "-100.0" not in done.stdout, done.stdout
    assert "times compared for 0 packages built in both runs; 1 taken from the build cache" in done.stdout
    assert f"B cached (built by {run_id(a)})" in done.stdout
    assert "Taken from the build cache in run A or B" in (tmp_path / "c.html").read_text()


@pytest.mark.build
def test_explore_trend_keeps_a_real_cached_rerun_apart(two_runs, tmp_path):
    (a, b), db = two_runs
    with History(db) as h:
        built = h.trend("stage1", "builds-slowly")
        assert built["run_id"].tolist() == [run_id(a)] and built["value"].iloc[0] > 4
    outputs = explore(db, "stage1", tmp_path / "explore.ipynb")
    text = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "runs used: 1 built, 1 taken from the build cache" in text, text
    row = next(line.split() for line in text.splitlines() if line.startswith("builds-slowly"))
    built_runs, cached_runs, median, last, low = row[1:6]
    assert (built_runs, cached_runs) == ("1", "1") and float(low) == float(median) > 4, row


@pytest.mark.build
def test_a_run_stopped_by_sigterm_stops_its_build_and_the_next_run_resumes_it(tmp_path, root_required):
    """SIGTERM (a CI timeout) stops `serpent run` as ^C does: exit 130, the kernel and the build
    gone, run.json says interrupted. The same command then resumes the build in its tree."""
    import signal
    import time
    profile = tmp_path / "tiny.yaml"
    profile.write_text(f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\nstages:\n  1:\n    packages: [interrupted]\n"
                       + yaml.safe_dump({"seed": load_profile("mini").common["seed"]}))
    run_a, run_b, work = tmp_path / "a", tmp_path / "b", tmp_path / "work"
    argv = [sys.executable, "-m", "serpentlib.cli", "run", "--profile", str(profile), "--stage", "1",
            "--work-dir", str(work), "--db", str(tmp_path / "m.sqlite"), "-q"]
    proc = subprocess.Popen(argv + ["--run-dir", str(run_a)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    build_log = run_a / "logs" / "stage1" / "interrupted" / "build.log"
    deadline = time.monotonic() + 300
    # The line the build prints (the log's first line, the command, names it too).
    while "waiting to be interrupted" not in (build_log.read_text().splitlines() if build_log.exists() else []):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "The same command resumes" in err, err[-2000:]
    assert subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True).returncode == 1, "the build lives on"
    assert json.loads((run_a / "run.json").read_text())["stages"]["1"] == "interrupted"
    stopped = pd.read_csv(run_a / "phases.csv").query("package == 'interrupted' and phase == 'build'")
    assert list(stopped["exit_code"]) == [130] and stopped["wall_s"].iloc[0] > 0  # its time is kept
    assert stopped["max_rss_kb"].iloc[0] > 0  # and its peak memory
    stamp = json.loads((work / "stage1" / "build" / "interrupted" / "resume.json").read_text())
    assert stamp["done"] == ["extract", "configure"]
    again = subprocess.run(argv + ["--run-dir", str(run_b)], capture_output=True, text=True, timeout=600)
    assert "stage 1 failed" in again.stderr  # the toolchain checks: this profile builds no toolchain
    phases = pd.read_csv(run_b / "phases.csv")
    mine = phases[phases["package"] == "interrupted"]
    assert list(mine["phase"])[:3] == ["fetch", "resume", "build"], mine
    assert (mine["exit_code"] == 0).all()
    cached = work / "cache" / "builds"
    readme = next(cached.glob("*/dest/usr/share/interrupted/configure-runs"))
    assert readme.read_text() == "configured\n"  # configure ran once, before the interruption


def test_a_damaged_metrics_database_is_a_clear_error_and_is_left_as_it_was(tmp_path):
    from serpentlib.cli import main

    db = tmp_path / "metrics.sqlite"
    db.write_bytes(b"SQLite format 3\0" + b"\x13" * 4000)  # a header, then garbage
    before = db.read_bytes()
    for argv in (["ingest", str(tmp_path), "--db", str(db)], ["compare", "a", "b", "--db", str(db)]):
        assert main(argv) == 2
    with pytest.raises(SerpentError, match=f"the metrics database {db} cannot be read(.|\n)*move it aside"):
        History(db)
    assert db.read_bytes() == before
