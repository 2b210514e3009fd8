"""Reports, the metrics database, run comparison and explore.ipynb, on runs made here."""

import shutil
import subprocess

import pytest

from serpentlib.compare import Noise, compare, load_run, stage_checks_changed
from serpentlib.history import History
from serpentlib.report import write_index

from .conftest import PACKAGES, explore, make_run


def test_compare_flags_the_slowed_package_and_nothing_else(tmp_path):
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", {**{k: v * 1.05 for k, v in PACKAGES.items()}, "dash": 6.0 + 10})
    table = compare(load_run(a), load_run(b)).set_index("package")
    assert table.loc["dash", "flag"] == "slower" and table.loc["dash", "time_delta_s"] == pytest.approx(10.0)
    assert (table.drop(index="dash")["flag"] == "").all(), table
    loose = compare(load_run(a), load_run(b), Noise(time_ratio=5.0)).set_index("package")
    assert loose.loc["dash", "flag"] == "", "the user's noise threshold decides"


def test_compare_names_checks_that_changed(tmp_path):
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b", failing_check="make")
    table = compare(load_run(a), load_run(b)).set_index("package")
    assert "checks changed" in table.loc["make", "flag"] and "True -> False" in table.loc["make", "checks_changed"]
    changed = stage_checks_changed(load_run(a), load_run(b))
    assert list(changed["subject"]) == ["make: --version"]


def test_cli_compare_writes_html_and_can_fail_ci(tmp_path, capsys):
    from serpentlib.cli import main
    a = make_run(tmp_path, "a")
    b = make_run(tmp_path, "b", {**PACKAGES, "bash": 80.0})
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--html", str(out), "--db", str(tmp_path / "m.db")]) == 0
    assert "1 of 4 packages flagged" in capsys.readouterr().out
    assert "slower" in out.read_text()
    assert main(["compare", str(a), str(b), "--html", str(out), "--fail-on-flag", "--db", str(tmp_path / "m.db")]) == 3


def test_history_ingests_runs_idempotently_and_draws_trends(tmp_path):
    db = tmp_path / "metrics.sqlite"
    with History(f"sqlite:///{db}") as h:
        for i in range(3):
            h.ingest(make_run(tmp_path, f"r{i}", {**PACKAGES, "bash": 38.0 + i}))
        h.ingest(tmp_path / "r1")  # again: replaced, not doubled
        assert list(h.runs()["run_id"]) == ["r0", "r1", "r2"]
        trend = h.trend("stage2", "bash")
        assert list(trend["value"].round(1)) == [38.0, 39.0, 40.0]
        assert list(h.trend("stage2", "bash", "installed_bytes")["value"]) == [2 * 10**6] * 3
        assert len(h.table("checks", ["r0"])) == len(PACKAGES)


def test_failed_run_report_says_what_failed_and_keeps_the_rest(tmp_path):
    run = make_run(tmp_path, "bad", failed_phase=("bash", "build"))
    page = write_index(run).read_text()
    assert "stage 2 failed: bash in build" in page
    assert "Failing step: bash in build" in page and "error: something broke" in page
    assert "musl" in page and "phases.csv" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium)")
def test_index_opens_in_a_real_browser_with_its_plots(tmp_path):
    run = make_run(tmp_path, "ok")
    index = write_index(run)
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=5000", "--dump-dom", index.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert "<h1>Run ok</h1>" in proc.stdout
    figures = index.read_text().count("<figure>")
    assert figures == 3  # timeline, time per package, installed size
    assert f'data-images-loaded="{figures}"' in proc.stdout, "every plot decoded in the browser"
    assert "Uncaught" not in proc.stderr and "CONSOLE" not in proc.stderr


def test_explore_notebook_runs_headless_against_a_store(tmp_path):
    db = tmp_path / "metrics.sqlite"
    with History(db) as h:
        for i in range(3):
            h.ingest(make_run(tmp_path, f"r{i}", {**PACKAGES, "make": 16.0 + 2 * i}))
    outputs = explore(db, "stage2", tmp_path / "explore.ipynb")
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1, "a static plot for the report"
    assert any("3 runs in" in "".join(o.get("text", "")) for o in outputs)
