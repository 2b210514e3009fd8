"""Reports, the metrics database, run comparison and explore.ipynb, on runs made here."""

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from serpentlib.cli import main
from serpentlib.records.compare import Noise, compare, load_run, stage_checks_changed
from serpentlib.records.history import History
from serpentlib.records.metrics import Recorder
from serpentlib.rows import CheckRecord
from serpentlib.records.report import broken_links, write_index

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
    assert "checks changed" in table.loc["make", "flag"] and "pass -> fail" in table.loc["make", "checks_changed"]
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


def test_an_interrupted_run_report_says_so_and_how_to_go_on(tmp_path):
    run = make_run(tmp_path, "stopped", interrupted_phase=("bash", "build"))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "stages": {**info["stages"], "3": "not run"}}))
    page = write_index(run).read_text()
    # The stage that did not run leaves gaps; the counts of the others stay whole numbers.
    assert re.search(r"<td class='interrupted'>interrupted</td>\s*<td>\d+</td>", page)
    assert re.search(r"<td class='not'>not run</td>\s*<td></td>", page) and "&lt;NA&gt;" not in page
    assert "Interrupted in stage 2" in page and "the same command resumes" in page
    assert re.search(r"Interrupted step \(after [\d.]+ (s|min)\): bash in build", page) and "Failing step" not in page


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
    # Columns of numbers right-aligned (class num), text left: the stages table has both
    stages = proc.stdout.split("<h2>Stages</h2>")[1].split("</table>")[0]
    assert re.search(r'<th class="num">wall_s</th>', stages) and '<th>outcome</th>' in stages, stages
    assert re.search(r'<td class="num">[\d,.]+</td>', stages) and "<td class=\"passed\">passed</td>" in stages, stages


def test_explore_notebook_runs_headless_against_a_store(tmp_path):
    db = tmp_path / "metrics.sqlite"
    with History(db) as h:
        for i in range(3):
            h.ingest(make_run(tmp_path, f"r{i}", {**PACKAGES, "make": 16.0 + 2 * i}))
    outputs = explore(db, "stage2", tmp_path / "explore.ipynb")
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1, "a static plot for the report"
    assert any("3 runs in" in "".join(o.get("text", "")) for o in outputs)


def test_compare_matches_checks_to_their_package_exactly(tmp_path):
    """A check of cmake is not one of make's, though `make` is in `cmake`."""
    times = {**PACKAGES, "cmake": 20.0}
    a, b = make_run(tmp_path, "a", times), make_run(tmp_path, "b", times, failing_check="cmake")
    table = compare(load_run(a), load_run(b)).set_index("package")
    assert table.loc["make", "checks_changed"] == "" and table.loc["make", "flag"] == ""
    assert "cmake: --version" in table.loc["cmake", "checks_changed"]


def outcome_run(tmp_path):
    """A passed run of stage 3 whose checks hold every outcome but xpass."""
    from serpentlib.rows import expected_failure, skipped
    run = make_run(tmp_path, "outcomes", stage="stage3")
    rec = Recorder(run, "outcomes", "mini")
    rec.add(expected_failure(CheckRecord("stage3", "tcc-test-suite", "tests2/114_bound_signal", False, "log l"),
                             "needs tcc's bounds checker"))
    rec.add(skipped("stage3", "flag:-O2", "zlib", "the flag leaves no mark an ELF file shows"))
    return run


def test_report_names_the_run_a_stage_replayed_its_checks_from(tmp_path):
    run = make_run(tmp_path, "replay")
    Recorder(run, "replay", "mini").add(CheckRecord("stage2", "fixed-point", "tcc", True, "same", cached_from="cold-run"))
    stages = write_index(run).read_text().split("<h2>Stages</h2>")[1].split("<h2")[0]
    assert "<td>cold-run</td>" in stages, stages


def test_report_shows_expected_failures_and_skips_apart_with_their_reasons(tmp_path):
    page = write_index(outcome_run(tmp_path)).read_text()
    stages = page.split("<h2>Stages</h2>")[1].split("<h2")[0]
    for column in ("pass", "fail", "xfail", "xpass", "skip", "checks_replayed_from"):
        assert f"<th>{column}</th>" in stages, stages
    assert "6 checks: 4 pass, 1 xfail, 1 skip" in page
    expected = page.split("<h3>Expected failures and skips, each reason once</h3>")[1].split("<h")[0]
    assert "tests2/114_bound_signal" in expected and "needs tcc's bounds checker" in expected
    assert "flag leaves no mark" in expected


def test_notebook_tables_show_each_outcome_and_the_reasons(tmp_path):
    from serpentlib.records import metrics, plots
    checks = metrics.load(outcome_run(tmp_path), "checks", "stage3")
    table = plots.check_table(checks).data.set_index("check")
    assert table.loc["tcc-test-suite", "xfail"] == 1 and table.loc["flag:-O2", "skip"] == 1
    assert table.loc["runs-in-root", "pass"] == 4 and table["fail"].sum() == 0
    listed = plots.check_list(checks, hide=["runs-in-root"])
    assert list(listed.columns) == ["check", "subject", "outcome", "reason", "detail"]
    assert list(listed["outcome"]) == ["xfail", "skip"]


def test_compare_sees_a_pass_become_an_expected_failure(tmp_path):
    from serpentlib.rows import expected_failure
    a, b = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    rows = (b / "checks.csv").read_text().splitlines()
    (b / "checks.csv").write_text("\n".join(rows[:-1]) + "\n")
    Recorder(b, "b", "mini").add(expected_failure(CheckRecord("stage2", "runs-in-root", "make: --version", False),
                                                 "make is broken on purpose"))
    changed = stage_checks_changed(load_run(a), load_run(b))
    assert list(zip(changed["subject"], changed["outcome_a"], changed["outcome_b"])) == [
        ("make: --version", "pass", "xfail")]


def test_report_of_a_run_that_failed_before_any_check(tmp_path):
    run = make_run(tmp_path, "early", failed_phase=("bash", "build"))
    (run / "checks.csv").unlink()
    page = write_index(run).read_text()
    assert "Failing step: bash in build" in page and "<h2 id='verified'>What was verified</h2><p>no check recorded</p>" in page


def test_publish_copies_the_report_and_its_records_but_not_logs_or_notebooks(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "logs" / "stage1").mkdir(parents=True)
    (run / "logs" / "stage1" / "x.log").write_text("log")
    for name in ("stage1-toolchain.html", "run.json", "checks.csv", "stage1-toolchain.ipynb"):
        (run / name).write_text(name)
    (run / "index.html").write_text('<a href="stage1-toolchain.html">s</a><a href="checks.csv">c</a>'
                                    '<a href="run.json">r</a><a href="logs/stage1/x.log">l</a>'
                                    '<a href="missing.csv">m</a><a href="https://example.invalid/">e</a>'
                                    '<a href="../outside">o</a>')
    (run / "sbom").mkdir()
    sbom = json.dumps({"files": [{"name": f"/usr/lib/lib{i}.a"} for i in range(40_000)]})
    (run / "sbom" / "root.spdx.json").write_text(sbom)  # over 1 MiB, as a full root's is
    (run / "index.html").write_text((run / "index.html").read_text() + '<a href="sbom/root.spdx.json">b</a>')
    # A stage page links each package's SBOM (and the big root one again).
    (run / "stage1-toolchain.html").write_text('<a href="sbom/musl.spdx.json">musl</a> <a href="#top">t</a>'
                                               '<a href="sbom/root.spdx.json">root</a>')
    (run / "sbom" / "musl.spdx.json").write_text('{"name": "musl"}')
    dest = tmp_path / "docs" / "runs" / "full"
    assert main(["publish", str(run), str(dest)]) == 0
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "checks.csv", "index.html", "run.json", "sbom/musl.spdx.json", "sbom/root.spdx.json.gz", "stage1-toolchain.html"]
    assert gzip.decompress((dest / "sbom" / "root.spdx.json.gz").read_bytes()).decode() == sbom
    page = (dest / "index.html").read_text()
    assert 'href="sbom/root.spdx.json.gz"' in page and 'href="checks.csv"' in page
    assert 'href="sbom/root.spdx.json.gz"' in (dest / "stage1-toolchain.html").read_text()
    # What is not published is no link: its text stays, saying so.
    assert '<span title="not published: logs/stage1/x.log">l</span>' in page
    assert '<span title="not published: missing.csv">m</span>' in page
    assert broken_links(dest) == []
    said = capsys.readouterr().out
    assert "bytes in" in said and "not published: missing.csv" in said
    # The check itself finds a broken link.
    (dest / "sbom" / "musl.spdx.json").unlink()
    assert broken_links(dest) == [("stage1-toolchain.html", "sbom/musl.spdx.json")]


def test_lit_results_are_counted_per_suite_and_its_many_skips_are_one_row_per_reason(tmp_path):
    from serpentlib.records import metrics, plots
    from serpentlib.stages.clang import lit_records
    run = make_run(tmp_path, "lit")
    result = {"tests": [{"name": f"lld :: ELF/{i}.s", "code": code} for i, code in
                        enumerate(["PASS", "PASS", "UNSUPPORTED", "UNSUPPORTED", "UNSUPPORTED", "XFAIL"])]}
    recorder = Recorder(run, "lit", "mini")
    for record in lit_records("stage3", "lld/test/ELF", result):
        recorder.add(record)
    checks = metrics.load(run, "checks", "stage3")
    table = plots.lit_table(checks).set_index("suite")
    assert table.loc["lld/test/ELF", ["pass", "skip", "xfail", "fail", "total"]].tolist() == [2, 3, 1, 0, 6]
    listed = plots.check_list(checks, hide=["lit"])
    assert list(listed[listed["check"] == "lit"]["outcome"]) == ["xfail"]
    page = write_index(run).read_text()
    excused = page.split("<h3>Expected failures and skips, each reason once</h3>")[1].split("</table>")[0]
    assert excused.count("UNSUPPORTED") == 1 and "<td>3</td><td>UNSUPPORTED" in excused and "ELF/2.s" in excused
    suites = page.split("<h3>The compilers' own tests</h3>")[1].split("</table>")[0]
    assert "<td>stage3</td><td>lld/test/ELF</td><td>2</td><td>0</td><td>1</td><td>0</td><td>3</td><td>6</td>" in suites


def test_a_rendered_notebook_fetches_no_script_from_elsewhere(tmp_path):
    """The stage reports read offline and name no outside host: nbconvert's require.js, MathJax
    and mermaid tags are left out."""
    import nbformat
    from serpentlib.records.report import render_notebook

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Stage"),
                                         nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output(
                                             "execute_result", {"text/plain": "2"}, execution_count=1)])])
    nbformat.write(nb, tmp_path / "stage.ipynb")
    page = render_notebook(tmp_path / "stage.ipynb").read_text()
    assert "<h1" in page and "Stage" in page and ">2<" in page.replace("\n", "")
    assert not re.findall(r'<script[^>]+src="[^"]*//', page) and "import(\"http" not in page


def test_a_plot_in_a_rendered_notebook_is_described_in_its_alternative_text(tmp_path):
    """A reader who cannot see the plot reads its title, its axes and its rows."""
    import nbformat
    import pandas as pd
    from IPython.core.formatters import DisplayFormatter
    from matplotlib.figure import Figure
    from serpentlib.records import plots
    from serpentlib.records.report import render_notebook

    sizes = pd.DataFrame({"package": ["musl", "bash"], "installed_bytes": [2**21, 2**22], "files": [10, 20]})
    formatter = DisplayFormatter()
    # As a kernel's inline backend does once pyplot is imported: a printer for every Figure, no alt
    formatter.formatters["image/png"].for_type(Figure, plots.png)
    data, metadata = formatter.format(plots.installed_size(sizes, "Stage 2: installed size"))
    out = nbformat.v4.new_output("display_data", {"image/png": data["image/png"]}, metadata=metadata)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot", outputs=[out])]),
                   tmp_path / "stage.ipynb")
    page = render_notebook(tmp_path / "stage.ipynb").read_text()
    (alt,) = re.findall(r'<img[^>]*\balt="([^"]*)"', page)
    assert alt == "Stage 2: installed size; x: installed size (MiB); rows: musl, bash", alt
    assert "No description has been provided" not in page


def test_the_index_leads_with_what_was_verified_and_links_what_each_record_names(tmp_path):
    """The fixpoint with its listing (published with the page), the suites per suite, the boot and
    a matrix of policies and flags per package, before the cost and the plots."""
    from serpentlib.records.report import broken_links, publish
    from serpentlib.rows import expected_failure, skipped
    run = make_run(tmp_path, "verified", stage="stage3")
    rec = Recorder(run, "verified", "full")
    rec.add(CheckRecord("stage3", "fixed-point", "llvm", True, "2 installed entries compared; identical; each entry, "
                        "with the root's and the rebuild's sha256, in fixpoint-llvm.csv"))
    (run / "fixpoint-llvm.csv").write_text("path,root,rebuild\n/usr/bin/clang-14,file 0755 ab,file 0755 ab\n")
    rec.add(CheckRecord("stage3", "lit", "clang/test/Driver: a.c", True, "0.1 s"))
    rec.add(skipped("stage3", "lit", "clang/test/Driver: b.c", "UNSUPPORTED: needs zlib"))
    rec.add(CheckRecord("stage4", "boots", "qemu", True, "systemd as PID 1"))
    rec.add(CheckRecord("stage4", "runs-in-boot", "zlib: ls", True, "exit 0"))
    rec.add(CheckRecord("stage4", "policy:no-rpath", "zlib", True, ""))
    rec.add(CheckRecord("stage4", "index-signed", "repo", True, f"log {run}/logs/a.log; key {Path.home()}/.k/a.pub"))
    rec.add(expected_failure(CheckRecord("stage4", "flag:-D_FORTIFY_SOURCE=2", "zlib", False, "compiler: ignored"),
                             "musl has no fortify headers"))
    page = write_index(run).read_text()
    # The first screen: under the outcome, the fixpoint, the suites and the boot in a line each
    top = page.split("<ul class='headline'>")[1].split("</ul>")[0]
    assert page.index("<ul class='headline'>") < page.index("<h2>Stages</h2>")
    assert "stage3: the final compiler's fixpoint (llvm): <b>pass</b>, 2 installed entries compared" in top, top
    assert "the compilers' own tests: 2 checks: 1 pass, 1 skip" in top and "boots (qemu): <b>pass</b>" in top
    assert "inside the booted system: 1 checks: 1 pass" in top
    verified = page.split("<h2 id='verified'>What was verified</h2>")[1].split("<h2>")[0]
    assert page.index("<h2 id='verified'>What was verified</h2>") < page.index("<h2>This run's own timings</h2>")
    assert 'href="fixpoint-llvm.csv"' in verified and "in fixpoint-llvm.csv" in verified
    assert "<td>stage3</td><td>clang/test/Driver</td><td>1</td><td>0</td><td>0</td><td>0</td><td>1</td><td>2</td>" in verified
    assert "Checks run inside the booted system: 1 checks: 1 pass." in verified
    policies = verified.split("<h3>Policies per package (stage 4)</h3>")[1].split("</table>")[0]
    flags = verified.split("<h3>Tuning and hardening flags per package (stage 4)</h3>")[1].split("</table>")[0]
    assert "<th>zlib</th><td class='o-pass'>pass</td>" in policies and "no-rpath" in policies, policies
    assert "<th>zlib</th><td class='o-xfail'>xfail</td>" in flags and "-D_FORTIFY_SOURCE=2" in flags, flags
    assert "musl has no fortify headers" in verified.split("each reason once</h3>")[1]
    dest = tmp_path / "published"
    publish(run, dest)
    assert (dest / "fixpoint-llvm.csv").read_text() == (run / "fixpoint-llvm.csv").read_text()
    assert broken_links(dest) == []
    # The machine's own paths are not published: the run directory is <run>, the home ~
    published = {p.name: p.read_text() for p in dest.iterdir() if p.is_file()}
    assert "log <run>/logs/a.log; key ~/.k/a.pub" in published["checks.csv"]
    assert not [name for name, text in published.items() if str(run) in text or f"{Path.home()}/" in text]
    assert "log &lt;run&gt;/logs/a.log" in published["index.html"] or "a.log" not in published["index.html"]


def test_tables_align_text_left_and_numbers_right_in_the_index_and_the_stage_pages(tmp_path):
    """The same rule in both: a column all of whose cells are numbers is right-aligned, any other left."""
    import nbformat
    import pandas as pd
    from serpentlib.records.pages import ALIGN_CSS, ALIGN_JS, table
    from serpentlib.records.report import render_notebook
    frame = pd.DataFrame({"package": ["musl", "bash"], "wall_s": [1234.5, 2.0]})
    html = table(frame)
    assert "<td>musl</td><td>1,234.5</td>" in html
    out = nbformat.v4.new_output("display_data", {"text/html": frame.to_html()})  # as a kernel shows a dataframe
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("t", outputs=[out])]), tmp_path / "s.ipynb")
    rendered = render_notebook(tmp_path / "s.ipynb")
    assert ALIGN_CSS in rendered.read_text() and ALIGN_JS in rendered.read_text()
    assert ALIGN_CSS in write_index(make_run(tmp_path, "aligned")).read_text()
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make setup installs Debian's chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:  # what a reader sees: each cell's computed alignment, over Jupyter's own style
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(rendered.as_uri())
        aligned = page.evaluate("[...document.querySelectorAll('table.dataframe tbody tr:first-child td')]"
                                ".map(c => getComputedStyle(c).textAlign)")
        browser.close()
    assert aligned == ["left", "right"], aligned


def test_the_stage4_notebook_tables_show_each_package_by_policy_and_by_flag():
    import pandas as pd
    from serpentlib.records import plots
    checks = pd.DataFrame({"stage": ["stage4"] * 5, "subject": ["x", "x", "x", "y", "x"],
                           "check": ["policy:a", "policy:b", "policy:c", "policy:a", "flag:-O2"],
                           "outcome": ["pass", "xfail", "fail", "skip", "skip"]})
    policies = plots.policy_table(checks).data
    assert policies.loc["x"].tolist() == ["ok", "excused", "FAIL"] and policies.loc["y"].tolist() == ["skipped", "", ""]
    assert plots.flag_table(checks).data.loc["x", "-O2"] == "skip" and "y" not in plots.flag_table(checks).data.index
