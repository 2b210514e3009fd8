"""The three record types every table is made of (phases, sizes, checks) and the one phase timer.

A bottom module: the build, the packages, the records and the stages all make or read these,
so it imports nothing of serpentlib but the errors.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .errors import CheckError, SerpentError

INTERRUPTED = 130  # the exit code of a command stopped by ^C or SIGTERM, as a shell reports it


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Step(NamedTuple):
    """What a phase record is of: the stage, the package and its version, the phase."""

    stage: str
    package: str = ""
    version: str = ""
    phase: str = ""


@dataclass
class PhaseRecord:
    """One phase of one package: the row every measurement table is made of."""

    stage: str
    package: str
    version: str
    phase: str
    start: str
    end: str
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kb: int
    exit_code: int
    log: str
    origin: str = "built"  # built, or cached: the package was taken from the build cache
    from_run: str = ""     # for a cached package: the run whose build filled the cache entry
    worker: str = "local"  # where it ran: this machine, or the name of the Dask worker that built it

    def as_dict(self) -> dict:
        return asdict(self)


class Timer:
    """Times one phase from its creation: wall time, and CPU time and peak memory of this process
    (`who=RUSAGE_SELF`) or of its reaped children (`RUSAGE_CHILDREN`, peak memory then unknown: 0)."""

    def __init__(self, who: int = resource.RUSAGE_SELF) -> None:
        self.who, self.start, self.t0 = who, now_iso(), time.monotonic()
        self.r0 = resource.getrusage(who)

    def record(self, step: Step, code: int, log: str = "", usage: Any = None) -> PhaseRecord:
        """The phase's record; `usage`: one finished process's own (from wait4) instead of the
        difference since the timer started."""
        if usage is not None:
            user, sys, rss = usage.ru_utime, usage.ru_stime, int(usage.ru_maxrss)
        else:
            r1 = resource.getrusage(self.who)
            user, sys = r1.ru_utime - self.r0.ru_utime, r1.ru_stime - self.r0.ru_stime
            rss = int(r1.ru_maxrss) if self.who == resource.RUSAGE_SELF else 0
        return PhaseRecord(step.stage, step.package, step.version, step.phase, self.start, now_iso(),
                           round(time.monotonic() - self.t0, 3), round(user, 3), round(sys, 3), rss, code, log)


@contextmanager
def timed(on_record: Callable[[PhaseRecord], Any], step: Step, log: str = "") -> Iterator[None]:
    """Record a phase done in this process (scanning, archiving, merging): exit 0 when the block
    ends, 1 when it raises."""
    timer, code = Timer(), 1
    try:
        yield
        code = 0
    finally:
        on_record(timer.record(step, code, log))


@dataclass
class SizeRecord:
    stage: str
    package: str
    version: str
    source_bytes: int
    build_bytes: int
    installed_bytes: int
    files: int
    elf_files: int
    compiler: str = ""  # what built it: $CC's version line, its path and whose it is (PackageBuild.compiler)

    def as_dict(self) -> dict:
        return asdict(self)


OUTCOMES = ("pass", "fail", "xfail", "xpass", "skip")
HELD = ("pass", "xpass")      # what `passed` says: the check ran and what it asserts held
FAILING = ("fail", "xpass")   # what fails a stage: an xpass until its expectation is updated
NEEDS_REASON = ("xfail", "xpass", "skip")


@dataclass
class CheckRecord:
    """One verification result. `passed`: the check ran and what it asserts held. `outcome` is pass
    or fail from it unless given: xfail (failed, as expected for `reason`), xpass (passed though
    expected to fail: a failure until the expectation is updated) or skip (not run, for `reason`;
    `passed` False). `fails`: the record fails its stage (fail or xpass)."""

    stage: str
    check: str
    subject: str
    passed: bool
    detail: str = ""
    outcome: str = ""
    reason: str = ""
    cached_from: str = ""  # the run whose result this replays; empty when checked in this run

    def __post_init__(self) -> None:
        if not self.outcome:
            self.outcome = "pass" if self.passed else "fail"
        if self.outcome not in OUTCOMES:
            raise SerpentError(f"check {self.check} {self.subject}: outcome {self.outcome!r} is unknown",
                               f"use one of {', '.join(OUTCOMES)}")
        if self.outcome in NEEDS_REASON and not self.reason:
            raise SerpentError(f"check {self.check} {self.subject}: a {self.outcome} needs its reason",
                               "say why it is expected to fail, or why it was skipped")
        if bool(self.passed) != (self.outcome in HELD):
            raise SerpentError(f"check {self.check} {self.subject}: passed={self.passed} contradicts outcome "
                               f"{self.outcome}", f"passed is True exactly for {', '.join(HELD)}; "
                               "make the record with expected_failure() or skipped()")
        self.passed = bool(self.passed)

    @property
    def fails(self) -> bool:
        return self.outcome in FAILING

    @classmethod
    def replayed(cls, row: dict) -> CheckRecord:
        """A record kept as a dict (the check cache), `passed` taken from its outcome: records kept
        before `passed` meant what it says now were True for every xfail and skip."""
        if row.get("outcome"):
            row = {**row, "passed": row["outcome"] in HELD}
        return cls(**row)

    def as_dict(self) -> dict:
        return asdict(self)


def expected_failure(record: CheckRecord, reason: str) -> CheckRecord:
    """`record` of a check expected to fail for `reason`: xfail if it failed, xpass if it passed."""
    return replace(record, outcome="xpass" if record.passed else "xfail", reason=reason)


def skipped(stage: str, check: str, subject: str, reason: str, detail: str = "") -> CheckRecord:
    return CheckRecord(stage, check, subject, False, detail, outcome="skip", reason=reason)


def require_passed(checks: list[CheckRecord]) -> None:
    """Raise CheckError naming every failed check: a fail, or an xpass (passed, though expected to fail)."""
    failed = [c for c in checks if c.fails]
    if failed:
        lines = "\n".join(f"  {c.check} {c.subject}: {c.outcome}: " +
                          (f"passed, though expected to fail ({c.reason}); {c.detail}" if c.outcome == "xpass" else c.detail)
                          for c in failed[:20])
        hint = "see the verification table in the notebook and the logs under logs/<stage>/checks"
        if any(c.outcome == "xpass" for c in failed):
            hint += "; an xpass is fixed by taking the check off its list of expected failures"
        raise CheckError(f"{len(failed)} of {len(checks)} checks failed:\n{lines}", hint)


TABLES: dict[str, type] = {"phases": PhaseRecord, "sizes": SizeRecord, "checks": CheckRecord}

__all__ = ["FAILING", "HELD", "INTERRUPTED", "OUTCOMES", "TABLES", "CheckRecord", "PhaseRecord", "SizeRecord", "Step", "Timer",
           "expected_failure", "now_iso", "require_passed", "skipped", "timed"]
