"""Check records: each has an outcome (pass, fail, xfail, xpass, skip) that every table keeps."""

import pytest

from serpentlib.errors import CheckError, SerpentError
from serpentlib.records.history import History
from serpentlib.records.metrics import Recorder, load
from serpentlib.rows import CheckRecord, expected_failure, require_passed, skipped
from serpentlib.stages.tcc import TCC_EXPECTED_FAILURES, suite_record

from .test_reports import make_run


def test_an_expected_failure_is_xfail_and_an_unexpected_pass_fails():
    why = "needs a feature this build leaves out"
    failed = expected_failure(CheckRecord("stage3", "suite", "t1", False, "exit 1"), why)
    passed = expected_failure(CheckRecord("stage3", "suite", "t2", True, "exit 0"), why)
    assert (failed.outcome, failed.passed, failed.fails, failed.reason) == ("xfail", False, False, why)
    assert (passed.outcome, passed.passed, passed.fails, passed.reason) == ("xpass", True, True, why)
    with pytest.raises(CheckError, match="t2.*xpass"):
        require_passed([failed, passed])
    require_passed([failed, skipped("stage3", "suite", "t3", "nothing to run it on")])


def test_an_outcome_needs_its_reason_and_must_agree_with_passed():
    with pytest.raises(SerpentError, match="reason"):
        CheckRecord("stage3", "suite", "t", True, outcome="xfail")
    with pytest.raises(SerpentError, match="passed"):
        CheckRecord("stage3", "suite", "t", True, outcome="fail")
    for outcome in ("xfail", "skip"):  # neither ran and held: `passed` True would say more than happened
        with pytest.raises(SerpentError, match="contradicts"):
            CheckRecord("stage3", "suite", "t", True, outcome=outcome, reason="r")
    with pytest.raises(SerpentError, match="outcome"):
        CheckRecord("stage3", "suite", "t", True, outcome="ok")


@pytest.mark.parametrize("ok, outcome", [(False, "xfail"), (True, "xpass")])
def test_tcc_suite_records_its_expected_failures_as_such(ok, outcome):
    test = "tests2/114_bound_signal"
    rec = suite_record("stage3", test, ok, "log x")
    assert rec.outcome == outcome and rec.reason == TCC_EXPECTED_FAILURES[test]
    assert rec.passed is ok and rec.fails is (outcome == "xpass")
    plain = suite_record("stage3", "tests2/00_assignment", ok, "log x")
    assert plain.outcome == ("pass" if ok else "fail") and plain.reason == ""


def test_outcomes_and_reasons_go_through_checks_csv_and_the_history_store(tmp_path):
    run = make_run(tmp_path, "r")
    rec = Recorder(run, "r", "mini")
    rec.add(expected_failure(CheckRecord("stage3", "suite", "bounds", False, "exit 1"), "no bounds checker"))
    rec.add(skipped("stage3", "suite", "asan", "no sanitizer runtime"))
    checks = load(run, "checks", "stage3").set_index("subject")
    assert list(checks["outcome"]) == ["xfail", "skip"] and not checks["passed"].any()
    assert checks.loc["bounds", "reason"] == "no bounds checker"
    with History(tmp_path / "m.sqlite") as h:
        h.ingest(run)
        stored = h.table("checks", ["r"], stage="stage3").set_index("subject")
    assert stored.loc["asan", "outcome"] == "skip" and stored.loc["asan", "reason"] == "no sanitizer runtime"
    assert not stored["passed"].any()
    assert set(load(run, "checks", "stage2")["outcome"]) == {"pass"}


def test_a_checks_csv_from_before_outcomes_still_loads(tmp_path):
    (tmp_path / "checks.csv").write_text("run_id,profile,stage,check,subject,passed,detail\n"
                                         "r,mini,stage2,runs,dash,True,exit 0\nr,mini,stage2,runs,bash,False,exit 1\n")
    checks = load(tmp_path, "checks")
    assert list(checks["outcome"]) == ["pass", "fail"] and list(checks["reason"]) == ["", ""]


def test_records_kept_when_passed_was_true_for_xfail_and_skip_say_what_happened(tmp_path):
    """checks.csv and the check cache of older runs said passed=True for every xfail and skip;
    read now, `passed` is True exactly for pass and xpass."""
    (tmp_path / "checks.csv").write_text(
        "run_id,profile,stage,check,subject,passed,detail,outcome,reason,cached_from\n"
        "r,full,stage3,lit,a,True,,pass,,\nr,full,stage3,lit,b,True,,xfail,r,\nr,full,stage3,lit,c,True,,skip,r,\n")
    assert list(load(tmp_path, "checks")["passed"]) == [True, False, False]
    kept = {"stage": "stage3", "check": "lit", "subject": "b", "passed": True, "detail": "", "outcome": "xfail",
            "reason": "r", "cached_from": "r"}
    assert CheckRecord.replayed(kept).passed is False
    with pytest.raises(SerpentError, match="contradicts"):
        CheckRecord(**kept)


def test_records_are_not_appended_under_another_version_s_columns(tmp_path):
    """A run directory reused by a version whose records have other columns: a clear error, and
    the old file stays as it was."""
    old = tmp_path / "checks.csv"
    old.write_text("run_id,profile,stage,check,subject,passed,detail\nr,mini,stage1,c,s,True,\n")
    before = old.read_text()
    with pytest.raises(SerpentError, match="give the run a new --run-dir"):
        Recorder(tmp_path, "r2", "mini").add(CheckRecord("stage1", "c", "s", True))
    assert old.read_text() == before
    Recorder(tmp_path / "fresh", "r2", "mini").add(CheckRecord("stage1", "c", "s", True))
    Recorder(tmp_path / "fresh", "r2", "mini").add(CheckRecord("stage1", "c", "t", True))
    assert len(load(tmp_path / "fresh", "checks")) == 2
