"""What a run verified, as the index leads with it: the final compiler's fixpoint, the compilers'
own test suites, the boot, reproducibility, and the policies and hardening flags per package;
each part's every record is in checks.csv, and what a record names (the fixpoint's listing) is
linked beside it."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from . import metrics
from .pages import matrix, table

FIXPOINT = ("fixed-point", "fixed-point-objects", "fixed-point-file")
SUITES = ("lit", "tcc-test-suite")
BOOT = ("boots", "boot-state", "system-bus", "journal", "unit-failed")
SHOWN = ["stage", "check", "subject", "outcome", "reason", "detail"]


def _listings(run_dir: Path) -> str:
    """Links to the files fixpoint records name (each compared entry with both digests)."""
    found = sorted(p.name for p in Path(run_dir).glob("fixpoint-*.csv"))
    return "".join(f'<p>Every entry compared, with both sha256: <a href="{html.escape(n)}">{html.escape(n)}</a></p>'
                   for n in found)


def suite_counts(checks: pd.DataFrame) -> pd.DataFrame:
    """Per stage and suite of the compilers' own tests (lit's suites, tcc's): each outcome's count."""
    tests = checks[checks["check"].isin(SUITES)]
    if tests.empty:
        return pd.DataFrame()
    suite = tests["subject"].str.split(": ", n=1).str[0].where(tests["check"] == "lit", "tcc tests")
    return metrics.outcome_counts(tests.assign(suite=suite), ["stage", "suite"])


def reasons(checks: pd.DataFrame) -> pd.DataFrame:
    """Each reason for an xfail or skip once, with how many records it covers and one of them."""
    excused = checks[checks["outcome"].isin(["xfail", "skip"])]
    if excused.empty:
        return pd.DataFrame()
    return (excused.groupby(["stage", "check", "outcome", "reason"], sort=False)["subject"]
            .agg(records="size", e_g="first").reset_index()
            .rename(columns={"e_g": "for example"})[["stage", "check", "outcome", "records", "reason", "for example"]])


def headline(checks: pd.DataFrame) -> str:
    """What was verified in a few lines, for the top of the index: the fixpoint, the compilers'
    own tests and the boot, each with its outcome (the section below has every record)."""
    lines = []
    for r in checks[checks["check"] == "fixed-point"].itertuples():
        lines.append(f"{r.stage}: the final compiler's fixpoint ({r.subject}): <b>{html.escape(r.outcome)}</b>, "
                     f"{html.escape(str(r.detail).split(';')[0])}")
    tests = checks[checks["check"].isin(SUITES)]
    if not tests.empty:
        lines.append(f"the compilers' own tests: {html.escape(count_outcomes(tests))}")
    for r in checks[checks["check"].isin(["boots", "boot-state"])].itertuples():
        lines.append(f"{r.check} ({html.escape(r.subject)}): <b>{html.escape(r.outcome)}</b>, "
                     f"{html.escape(str(r.detail)[:400])}")
    inside = checks[checks["check"] == "runs-in-boot"]
    if not inside.empty:
        lines.append(f"inside the booted system: {html.escape(count_outcomes(inside))}")
    return ("<ul class='headline'>" + "".join(f"<li>{line}</li>" for line in lines) +
            "</ul><p><a href=\"#verified\">What was verified</a>, each record.</p>") if lines else ""


def verified_html(checks: pd.DataFrame, run_dir: Path) -> str:
    """The index's first section after the outcome."""
    if checks.empty:
        return "<h2 id='verified'>What was verified</h2><p>no check recorded</p>"
    parts = ["<h2 id='verified'>What was verified</h2>",
             "<p>Per stage, every check's outcome (all records: <a href=\"checks.csv\">checks.csv</a>):</p>",
             table(metrics.outcome_counts(checks, ["stage"]))]
    fix = checks[checks["check"].isin(FIXPOINT)]
    if not fix.empty:
        parts += ["<h3>The final compiler rebuilds itself to a fixed point</h3>", table(fix[SHOWN]), _listings(run_dir)]
    suites = suite_counts(checks)
    if not suites.empty:
        whole = checks[checks["check"] == "lit-suite"][["stage", "subject", "outcome", "detail"]]
        parts += ["<h3>The compilers' own tests</h3>", table(suites)]
        parts += ["<p>Each lit suite as a whole (lit's exit status against its tests' outcomes):</p>", table(whole)] \
            if not whole.empty else []
    boot = checks[checks["check"].isin(BOOT)]
    inside = checks[checks["check"] == "runs-in-boot"]
    if not boot.empty:
        parts += ["<h3>The system boots</h3>", table(boot[SHOWN]),
                  f"<p>Checks run inside the booted system: {html.escape(count_outcomes(inside))}.</p>"]
    same = checks[checks["check"] == "reproducible"]
    if not same.empty:
        parts += ["<h3>Reproducible</h3>", table(same[SHOWN])]
    for kind, title in (("policy:", "Policies per package (stage 4)"), ("flag:", "Tuning and hardening flags per package "
                                                                                "(stage 4)")):
        cells = metrics.outcome_matrix(checks, kind, "stage4")
        if not cells.empty:
            parts += [f"<h3>{title}</h3>", matrix(cells, "package")]
    why = reasons(checks)
    if not why.empty:
        parts += ["<h3>Expected failures and skips, each reason once</h3>", table(why)]
    return "".join(parts)


def count_outcomes(checks: pd.DataFrame) -> str:
    """`12 checks: 9 pass, 2 xfail, 1 skip`: the outcomes that occurred."""
    counts = checks["outcome"].value_counts()
    parts = [f"{counts[o]} {o}" for o in metrics.OUTCOMES if counts.get(o, 0)]
    return f"{len(checks)} checks" + (": " + ", ".join(parts) if parts else "")
