"""A run's report: `index.html` with the summary, and an HTML rendering of each executed notebook."""

from __future__ import annotations

import gzip
import html
import json
import re
from pathlib import Path

import nbformat
import pandas as pd

from . import cost, metrics, plots
from .pages import ALIGN_CSS, ALIGN_JS, table
from .verified import count_outcomes, headline, verified_html
from ..errors import SerpentError, log_tail
from ..files import walk
from ..rows import FAILING, INTERRUPTED

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.passed{color:#2e7d32;font-weight:600} .failed,.interrupted{color:#c62828;font-weight:600}
.banner{padding:1em;border-radius:6px;margin:1em 0} .banner.ok{background:#e8f5e9} .banner.bad{background:#ffebee}
pre{background:#f5f5f5;padding:1em;overflow:auto;font-size:85%} figure{margin:0 0 1em} img{max-width:100%}"""


# nbconvert's page, less the scripts it would fetch from elsewhere (require.js, MathJax, mermaid): a
# report has no math or diagrams, and reads the same offline. A plot's image carries its
# description (plots.describe) as its alternative text.
SELF_CONTAINED = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}<style>{{ resources.serpent_css }}</style><script>{{ resources.serpent_js }}</script>{%- endblock html_head_css -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
{%- set alt = output | get_metadata('alt', 'image/png') %}{% if alt %} alt="{{ alt | escape_html }}"{% endif %}>
</div>
{%- endblock data_png -%}
"""


def render_notebook(notebook: Path, code: bool = False) -> Path:
    """`<notebook>.html` (code hidden) or `<notebook>.code.html` (code shown), with no outside script."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[DictLoader({"serpent.html.j2": SELF_CONTAINED})],
                            template_file="serpent.html.j2",
                            exclude_input=not code, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                          resources={"serpent_css": ALIGN_CSS, "serpent_js": ALIGN_JS})
    out = notebook.with_suffix(".code.html" if code else ".html")
    out.write_text(body)
    return out


def _seed_html(seed: dict) -> str:
    """Stage 0 in one line: what every host-side step of the run ran in."""
    if not seed:
        return "<p>stage 0: not recorded (a run from before the seed root)</p>"
    versions = ", ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in seed.get("versions", {}).items())
    return (f"<p>stage 0 (seed root): Debian <b>{html.escape(seed.get('suite', '?'))}</b>, seed "
            f"<code>{html.escape(seed.get('key', '?'))}</code>, {seed.get('packages', '?')} packages "
            f"(digest <code>{html.escape(seed.get('packages_digest', '?'))}</code>), "
            f"{html.escape(seed.get('clang', '?'))}<br><small>{versions}</small></p>")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cost_html(spent: pd.DataFrame) -> str:
    """What the run's result cost to build (cost.csv), over every run it took."""
    if spent.empty:
        return ""
    complete, runs = spent["complete"], cost.run_count(spent["run_ids"])
    cpu = spent["user_s"] + spent["sys_s"]
    costliest = (spent.assign(wall_min=(spent["wall_s"] / 60).round(1), cpu_min=(cpu / 60).round(1),
                              peak_rss_mb=(spent["max_rss_kb"] / 1024).round(0).astype(int))
                 .nlargest(8, "wall_s")[["stage", "package", "origin", "wall_min", "cpu_min", "peak_rss_mb", "runs"]])
    gaps = ("" if complete.all() else
            f"<p><b>Incomplete:</b> part of the work behind {', '.join(spent.loc[~complete, 'package'])} is in runs "
            "the metrics database does not hold (never added, or from another work directory).</p>")
    return (f"<h2 id='cost'>What the result cost</h2><p>The build work behind this run's packages, built here or taken from "
            f"the build cache, interrupted and resumed builds counted whole: {_minutes(spent['wall_s'].sum())} wall, "
            f"{_minutes(cpu.sum())} CPU, peak {spent['max_rss_kb'].max() / 1024:.0f} MB in one process, over {runs} "
            f"run(s) (<a href=\"{cost.FILE}\">{cost.FILE}</a>).</p>{gaps}{table(cost.per_stage(spent))}"
            f"<p>The costliest packages:</p>{table(costliest)}")


def result_line(spent: pd.DataFrame) -> str:
    """One line under the outcome: what the result took, over how many runs."""
    if spent.empty:
        return ""
    cpu = spent["user_s"].sum() + spent["sys_s"].sum()
    lacking = spent.loc[~spent["complete"], "package"]
    gaps = ("" if lacking.empty else f" at least (part of the work behind {len(lacking)} package(s) is in runs the "
            "metrics database does not hold)")
    return (f"<p><b>The result</b> took {_minutes(spent['wall_s'].sum())} of building ({_minutes(cpu)} CPU){gaps} over "
            f"{cost.run_count(spent['run_ids'])} run(s): <a href=\"#cost\">what it cost</a>.</p>")


def _images(figures: list) -> str:
    return "".join(f'<figure><img alt="{html.escape(plots.describe(f) or t)}" src="data:image/png;base64,{plots.png(f)}">'
                   f'</figure>' for t, f in figures)


def stage_work_html(stage: str, spent: pd.DataFrame, builds: pd.DataFrame) -> str:
    """For a stage's page: the build work behind the stage's result over every run it took
    (cost.csv's `spent`, builds.csv's `builds`), where the notebook showed this run's own timings only."""
    mine = spent[spent["stage"] == stage] if not spent.empty else spent
    if mine.empty:
        return ""
    shown = mine.assign(wall_min=(mine["wall_s"] / 60).round(1), cpu_min=((mine["user_s"] + mine["sys_s"]) / 60).round(1))
    rows = builds[builds["stage"] == stage] if not builds.empty else builds
    figure = _images([(stage, plots.work_by_run(rows, f"{stage}: the real builds behind the result, by run"))]) \
        if not rows.empty else ""
    return (f"<section class='jp-Cell' style='padding:0 2em'><h2>The build work behind this stage's result</h2>"
            f"<p>The timings above are this run's own. What built the stage's packages, over every run it took (from "
            f"the report's <a href=\"{cost.FILE}\">{cost.FILE}</a> and <a href=\"{cost.BUILDS}\">{cost.BUILDS}</a>):</p>"
            + table(shown[["package", "origin", "wall_min", "cpu_min", "runs", "run_ids", "complete"]]) + figure
            + "</section>")


def runs_html(runs: pd.DataFrame, builds: pd.DataFrame) -> str:
    """The runs behind the result (runs.csv) and their real builds per package (builds.csv)."""
    if runs.empty:
        return ""
    shown = runs.assign(hours=(runs["duration_s"].astype(float) / 3600).round(2),
                        build_hours=(runs["build_wall_s"].astype(float) / 3600).round(2))
    figures = [(f"{stage}: the build work behind the result", plots.work_by_run(rows, f"{stage}: the real builds behind "
                                                                                       "the result, by run"))
               for stage, rows in builds.groupby("stage", sort=False)] if not builds.empty else []
    return (f"<h2>The runs it took</h2><p>{len(runs)} run(s), oldest first; each one's stages as they ended, why it "
            f"stopped, and what it built (or went on building) of the result (<a href=\"{cost.RUNS}\">{cost.RUNS}</a>; "
            f"every phase of those builds: <a href=\"{cost.BUILDS}\">{cost.BUILDS}</a>).</p>"
            + table(shown[["run_id", "started", "hours", "stages", "why", "built", "build_hours"]]) + _images(figures))


def write_index(run_dir: Path, code: bool = False) -> Path:
    """Render every executed notebook of the run and write `index.html`; works for failed runs too."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    phases, sizes, checks = (metrics.load(run_dir, t) for t in ("phases", "sizes", "checks"))
    links, spent, builds = [], cost.load(run_dir), cost.load_builds(run_dir)
    for nb in sorted(run_dir.glob("stage*.ipynb")) + sorted(run_dir.glob("explore*.ipynb")):
        page = render_notebook(nb, code)
        work = stage_work_html(nb.stem.split("-")[0], spent, builds)
        if work:  # the notebook ran before the result's cost was known: the page gets it now
            page.write_text(page.read_text().replace("</body>", f"{work}</body>", 1))
        links.append(f'<li><a href="{page.name}">{html.escape(nb.stem)}</a></li>')
    stages = info.get("stages", {})
    failed = {k: v for k, v in stages.items() if v != "passed"}
    n_failed_checks = int(checks["outcome"].isin(FAILING).sum()) if not checks.empty else 0
    ok = not failed and n_failed_checks == 0
    stopped = [k for k, v in stages.items() if v == "interrupted"]
    why = info.get("failure") or (f"Interrupted in stage {stopped[0]}: the records made until then are here, and "
                                  "the same command resumes the run." if stopped else "The run did not pass.")
    banner = (f"<div class='banner ok'>All {len(stages)} stage(s) passed; {html.escape(count_outcomes(checks))}.</div>"
              if ok else f"<div class='banner bad'>{html.escape(why)}</div>")
    tail = ""
    bad = phases[phases["exit_code"] != 0] if not phases.empty else phases
    if not bad.empty:
        row = bad.iloc[-1]
        took = f"{row['wall_s']:.0f} s" if row["wall_s"] < 60 else f"{row['wall_s'] / 60:.1f} min"
        what = f"Interrupted step (after {took})" if row["exit_code"] == INTERRUPTED else "Failing step"
        tail = (f"<h2>{what}: {html.escape(str(row['package']))} in {html.escape(str(row['phase']))}</h2>"
                f"<p>log: <code>{html.escape(str(row['log']))}</code></p><pre>{html.escape(log_tail(Path(row['log']), 40))}</pre>")
    origins = metrics.package_origins(phases).reset_index()
    summary = metrics.stage_summary(phases, checks, stages).astype(object)
    outcome_html = table(summary.where(summary.notna(), ""))  # to_html shows a missing Int64 as <NA>
    for word in ("passed", "failed", "interrupted", "not run"):
        outcome_html = outcome_html.replace(f"<td>{word}</td>", f"<td class='{word.split()[0]}'>{word}</td>")
    built = phases[phases["origin"] == "built"] if not phases.empty else phases
    slowest = (built.groupby(["stage", "package"])["wall_s"].sum().nlargest(5).reset_index()
               if not built.empty else pd.DataFrame())
    cached = origins[origins["origin"] == "cached"][["stage", "package", "from_run"]]
    biggest = (sizes.nlargest(5, "installed_bytes")[["stage", "package", "installed_bytes", "files"]]
               if not sizes.empty else pd.DataFrame())
    failed_checks = checks[checks["outcome"].isin(FAILING)][["stage", "check", "subject", "outcome", "reason", "detail"]]
    figures = []
    for stage, rows in (phases.groupby("stage", sort=False) if not phases.empty else []):
        figures.append((f"{stage}: build timeline", plots.timeline(rows, f"{stage}: build timeline")))
        figures.append((f"{stage}: wall time per package", plots.time_per_package(rows, f"{stage}: wall time per package")))
    for stage, rows in (sizes.groupby("stage", sort=False) if not sizes.empty else []):
        figures.append((f"{stage}: installed size", plots.installed_size(rows, f"{stage}: installed size per package")))
    if (run_dir / "packages.csv").is_file():
        packages = pd.read_csv(run_dir / "packages.csv", keep_default_na=False)
        figures.append(("stage4: package sizes", plots.package_sizes(packages, "stage4: installed and packaged size")))
    images = _images(figures)
    host = info.get("host", {})
    sbom_link = (' · SBOM (SPDX 2.3): <a href="sbom/root.spdx.json">the stage 4 root</a>'
                 if (run_dir / "sbom" / "root.spdx.json").is_file() else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>serpent run {html.escape(info.get('run_id', run_dir.name))}</title>
<style>{STYLE}
{ALIGN_CSS}</style><script>{ALIGN_JS}</script></head><body>
<h1>Run {html.escape(info.get('run_id', run_dir.name))}</h1>
<p>profile <b>{html.escape(info.get('profile', '?'))}</b> · started {html.escape(info.get('started', '?'))} ·
{info.get('duration_s', 0):.0f} s · host {html.escape(host.get('hostname', '?'))} ({html.escape(str(host.get('cpus', '?')))} cpus,
kernel {html.escape(host.get('kernel', '?'))})</p>
{_seed_html(info.get('seed') or {})}
{banner}
{headline(checks)}
{result_line(spent)}
<h2>Stages</h2><p>wall_s and the counts of built and cached packages are this run's own; what the result
took over every run is under <a href="#cost">What the result cost</a>. A stage whose every package came from
the build cache replays the checks made on the very same tree, by the run named in checks_replayed_from
(checks.csv's cached_from says it per check; <code>serpent run --recheck</code> runs them again).</p>{outcome_html}
{tail}
{verified_html(checks, run_dir)}
<h2>Failed checks</h2>{table(failed_checks)}
{cost_html(spent)}
{runs_html(cost.load_runs(run_dir), builds)}
<h2>Reports</h2><ul>{''.join(links) or '<li>no executed notebook</li>'}</ul>
<p>Code is hidden; <code>serpent report {html.escape(str(run_dir))} --code</code> renders it shown.</p>
<h2>This run's own timings</h2><p>The last run alone: a package it took from the build cache shows as one short
<code>cached</code> phase, not the build behind it (that is under <a href="#cost">What the result cost</a>).</p>
{images or '<p>no records</p>'}
<h3>Slowest packages</h3><p>of those built in this run</p>{table(slowest)}
<h3>Taken from the build cache</h3>
<p>not built in this run: installed from the build of the run named</p>{table(cached)}
<h3>Biggest packages</h3>{table(biggest)}
<p>Records: <a href="phases.csv">phases.csv</a> · <a href="sizes.csv">sizes.csv</a> · <a href="checks.csv">checks.csv</a>
· <a href="run.json">run.json</a>{sbom_link}</p>
<script>/* for tests in a real browser: how many images decoded */
addEventListener("load", () => {{ document.body.dataset.imagesLoaded =
  [...document.images].filter(i => i.complete && i.naturalWidth > 0).length; }});</script>
</body></html>"""
    out = run_dir / "index.html"
    out.write_text(page)
    return out


PUBLISH_GZIP = 1 << 20  # a record bigger than this is published gzipped (an SBOM lists every file)


HREF = re.compile(r'href="([^"#?]+)"')


def local_links(page: str) -> list[str]:
    """The page's links to files beside it (not anchors, other sites or absolute paths)."""
    return [h for h in HREF.findall(page) if "://" not in h and not h.startswith(("/", "mailto:"))]


def own_places(run_dir: Path) -> dict[str, str]:
    """The paths of the machine a run was made on, as a published report names them instead: the
    run directory `<run>`, the work directory `<work>`, the home directory `~`."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):  # no run.json, or not one serpent wrote: the run directory is still known
        info = {}
    info = info if isinstance(info, dict) else {}
    places = {str(Path(run_dir).resolve()): "<run>", str(info.get("run_dir") or ""): "<run>",
              str(info.get("work_dir") or ""): "<work>", str(Path.home()): "~"}
    return {p: n for p, n in sorted(places.items(), key=lambda kv: -len(kv[0])) if len(p) > 1}


def unplaced(data: bytes, places: dict[str, str]) -> bytes:
    """`data` with each of `places` (longest first) replaced by its name where it is a whole path
    or begins one (`/root` in `/root/.cache`, not in `/stage4/root`)."""
    for path, name in places.items():
        data = re.sub(rb"(?<![\w./-])" + re.escape(path.encode()) + rb"(?![\w.-])", name.encode().replace(b"\\", b"\\\\"), data)
    return data


def publish(run_dir: Path, dest: Path) -> list[tuple[str, int]]:
    """Copy a run's report to `dest` for others to read: index.html, every page it links and every
    file those pages link in the run directory (the stages' HTML, run.json, phases, sizes and
    checks, the SBOMs), not the logs or the notebooks; the machine's own paths replaced (see
    `own_places`). A record over 1 MiB goes as NAME.gz, and
    the pages link that; a link to what is not published (a log, a file the run lacks) is left
    as its text, titled "not published", so no published link is broken. Returns (file, bytes)
    per file written, and ("not published: NAME", 0) per link so unlinked."""
    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "index.html").is_file():
        raise SerpentError(f"{run_dir} has no index.html", f"write it first: serpent report {run_dir}")
    pages: dict[str, str] = {}
    queue, renamed, left_out, copied, written = ["index.html"], {}, set(), [], []
    places = own_places(run_dir)
    while queue:
        name = queue.pop(0)
        if name in pages:
            continue
        pages[name] = (run_dir / name).read_text(errors="replace")
        for link in local_links(pages[name]):
            target = (Path(name).parent / link).as_posix()
            parts = Path(target).parts
            if ".." in parts or parts[0] == "logs" or not (run_dir / target).is_file():
                left_out.add((name, link))
            elif target.endswith(".html"):
                queue.append(target)
            elif target not in renamed:
                (dest / target).parent.mkdir(parents=True, exist_ok=True)
                data = unplaced((run_dir / target).read_bytes(), places)
                if len(data) > PUBLISH_GZIP:
                    with gzip.GzipFile(dest / f"{target}.gz", "wb", mtime=0) as out:
                        out.write(data)
                    renamed[target] = f"{target}.gz"
                else:
                    (dest / target).write_bytes(data)
                    renamed[target] = target
                copied.append((renamed[target], (dest / renamed[target]).stat().st_size))
    for name, page in pages.items():
        for link in set(local_links(page)):
            target = (Path(name).parent / link).as_posix()
            if (name, link) in left_out:
                page = re.sub(rf'<a\b[^>]*href="{re.escape(link)}"[^>]*>(.*?)</a>',
                              lambda m, t=target: f'<span title="not published: {html.escape(t)}">{m.group(1)}</span>',
                              page, flags=re.DOTALL)
            elif renamed.get(target, target) != target:
                page = page.replace(f'href="{link}"', f'href="{link}.gz"')
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(unplaced(page.encode(), {p: html.escape(n) for p, n in places.items()}))
        written.append((name, (dest / name).stat().st_size))
    return written + copied + [(f"not published: {target}", 0) for target in sorted({(Path(n).parent / link).as_posix()
                                                                          for n, link in left_out})]


def broken_links(published: Path) -> list[tuple[str, str]]:
    """(page, link) for each link of a published report's pages to a file that is not there."""
    published = Path(published)
    pages = sorted(e.path for e in walk(published) if e.is_file and e.rel.endswith(".html"))
    return [(page.relative_to(published).as_posix(), link) for page in pages
            for link in local_links(page.read_text(errors="replace")) if not (page.parent / link).is_file()]
