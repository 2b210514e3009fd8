"""Reproducibility: build a profile twice from clean work directories at different paths and
compare every file of every stage's tree by sha256."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..build.cache import stage_key, stage_marker
from ..build.profile import Profile
from ..errors import SerpentError
from ..files import copy_tree, walk
from ..hashes import describe, listing
from ..rows import CheckRecord
from .metrics import Recorder
from .run import RunOptions, run_stages

log = logging.getLogger(__name__)

ENTRY_COLUMNS = ["path", "a", "b"]  # each entry compared, as each tree holds it (see hashes.describe)
STAGE_TREES = {"stage1": "stage1/sysroot", "stage2": "stage2/root", "stage3": "stage3/root", "stage4": "stage4/repo"}


@dataclass
class TreeDiff:
    stage: str
    files: int
    identical: int
    differing: pd.DataFrame  # path, cause
    entries: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ENTRY_COLUMNS))  # path, a, b

    @property
    def percent(self) -> float:
        return round(100 * self.identical / self.files, 2) if self.files else 100.0


def tree_paths(root: Path) -> list[str]:
    """Every entry under `root`, directories and links included, relative to it."""
    return [e.rel for e in walk(root)]


def fingerprint(root: Path, paths=None) -> dict[str, str]:
    """relative path -> what it is (see `describe`): every entry under `root`, or only `paths`
    (those missing are left out)."""
    if paths is None:
        return listing(root)
    out = {}
    for rel in paths:
        try:
            out[rel] = describe(Path(root) / rel, os.lstat(Path(root) / rel))
        except FileNotFoundError:
            continue
    return out


def cause(a: Path, b: Path, work_a: Path, work_b: Path) -> str:
    """A first guess at why two builds of a file differ; diffoscope's first lines where installed."""
    if not (os.path.lexists(a) and os.path.lexists(b)):  # a link may lead nowhere outside its root
        return "only in one build"
    if a.is_symlink() or b.is_symlink():
        return f"links differ: {os.readlink(a) if a.is_symlink() else 'file'} vs {os.readlink(b) if b.is_symlink() else 'file'}"
    kinds = [describe(p, os.lstat(p)).split()[0] for p in (a, b)]
    if kinds[0] != kinds[1]:
        return f"kinds differ: {kinds[0]} vs {kinds[1]}"
    modes = [f"{stat.S_IMODE(os.lstat(p).st_mode):04o}" for p in (a, b)]
    if modes[0] != modes[1]:
        return f"modes differ: {modes[0]} vs {modes[1]}"
    if kinds[0] != "file":
        return f"{kinds[0]}s differ"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    if str(work_a).encode() in data_a or str(work_b).encode() in data_b:
        return "embeds its build's work directory path"
    if shutil.which("diffoscope"):
        out = subprocess.run(["diffoscope", "--text", "-", "--max-report-size", "4000", str(a), str(b)],
                             capture_output=True, text=True, timeout=120).stdout
        return " | ".join(line.strip() for line in out.splitlines()[1:6])
    kind = "ELF" if data_a[:4] == b"\x7fELF" else "file"
    return f"{kind} contents differ ({len(data_a)} vs {len(data_b)} bytes); install diffoscope for details"


def compare_trees(stage: str, ta: Path, tb: Path, work_a: Path, work_b: Path, paths=None) -> TreeDiff:
    """Two trees entry by entry (or only `paths`, relative to both): contents, link targets, kinds
    and modes, directories included; each difference with its cause."""
    fb = fingerprint(tb, paths)
    fa = fingerprint(ta, paths)
    names = sorted(set(fa) | set(fb))
    bad = [p for p in names if fa.get(p) != fb.get(p)]
    rows = [{"stage": stage, "path": "/" + p, "cause": cause(ta / p, tb / p, work_a, work_b)} for p in bad]
    entries = pd.DataFrame([("/" + p, fa.get(p, "missing"), fb.get(p, "missing")) for p in names], columns=ENTRY_COLUMNS)
    return TreeDiff(stage, len(names), len(names) - len(bad), pd.DataFrame(rows, columns=["stage", "path", "cause"]),
                    entries)


def same_inputs(work_a: Path, work_b: Path, stages: list[str]) -> None:
    """Two builds of a stage are worth comparing only when made from the same inputs: recipes,
    flags and earlier stages, wherever their work directories are (the markers' `inputs`)."""
    for stage in stages:
        a, b = (stage_marker(Path(w) / stage).get("inputs") for w in (work_a, work_b))
        if a is None or b is None:  # a stage finished before markers said it: nothing to hold against
            continue
        if a != b:
            raise SerpentError(f"{stage} of {work_a} was built from other inputs ({a[:12]}) than {stage} of "
                               f"{work_b} ({b[:12]}): the recipes, profile or earlier stages differ",
                               f"run {stage} in {work_a} again with this profile and these recipes, then compare")


def compare_work_dirs(work_a: Path, work_b: Path, stages: list[str] | None = None) -> list[TreeDiff]:
    """Each stage's tree of two builds, file by file."""
    diffs = []
    for stage, sub in STAGE_TREES.items():
        if stages is not None and stage not in stages:
            continue
        ta, tb = Path(work_a) / sub, Path(work_b) / sub
        if ta.is_dir() and tb.is_dir():
            diffs.append(compare_trees(stage, ta, tb, Path(work_a), Path(work_b)))
    return diffs


def as_checks(diffs: list[TreeDiff]) -> list[CheckRecord]:
    return [CheckRecord(d.stage, "reproducible", f"{d.percent}% of {d.files} files identical", d.identical == d.files,
                        "; ".join(f"{r.path}: {r.cause}" for r in d.differing.head(5).itertuples()) or "every file")
            for d in diffs]


@dataclass
class Reproduced:
    """What `reproduce` found: each stage's comparison, their records, every differing file."""

    top: Path
    diffs: list[TreeDiff]
    checks: list[CheckRecord]
    differing: pd.DataFrame


def two_workers(address: str) -> list[str]:
    """The names of two workers of the Dask scheduler at `address`, for the two builds."""
    from ..build.remote import connect
    with connect(address) as client:
        names = sorted(str(w.get("name")) for w in client.scheduler_info(n_workers=-1)["workers"].values())
    if len(names) < 2:
        raise SerpentError(f"the cluster at {address} has {len(names)} worker(s); reproducing across machines needs two",
                           "start another worker (dask worker ADDRESS), or reproduce with --workers 2 on this machine")
    return names[:2]


def reproduce(profile: Profile, stages: list[int], top: Path, against: Path | None = None,
              seed_from: Path | None = None, quiet: bool = False, metrics_db: str | None = None,
              cluster: str = "", workers: int = 0) -> Reproduced:
    """Build `stages` of `profile` twice, cleanly and at different paths (of different lengths
    too), nothing from the build cache, and compare every file; or, `against` a work directory
    built before, once more and compare with it (half the cost). Earlier stages, finished in
    `seed_from` (default: `against`), are copied in so both builds start alike. The records go
    to `top`: checks.csv and differing.csv.

    With a Dask `cluster` (or a LocalCluster of `workers`, at least 2), the builds a worker can
    make (those that see stages 0 and 1 alone) go to one worker in the first build and to another
    in the second: the comparison is across machines."""
    if workers:
        from ..build.remote import local_cluster
        with local_cluster(max(2, workers), top) as local:
            return reproduce(profile, stages, top, against, seed_from, quiet, metrics_db, local.scheduler_address)
    pinned = two_workers(cluster) if cluster else []
    seed_from = seed_from or against
    for n in stages if against else []:  # before hours of building: the stages to compare with are there
        stage_key(Path(against) / f"stage{n}")
    builds = [(top / "b" / "run", top / "b" / "second-build" / "work")]
    if not against:
        builds.insert(0, (top / "a" / "run", top / "a" / "work"))
    for i, (run_dir, work_dir) in enumerate(builds):
        for n in sorted(set(profile.stage_numbers) - set(stages)) if seed_from else []:
            if n < min(stages):
                stage_key(Path(seed_from) / f"stage{n}")
                copy_tree(Path(seed_from) / f"stage{n}", work_dir / f"stage{n}")
        on = tuple(pinned[i:i + 1]) if pinned else ()  # with `against`, the one build on the first worker
        log.info("reproduce: building %s in %s%s", profile.name, work_dir, f" on worker {on[0]}" if on else "")
        run_stages(profile, stages, run_dir, work_dir,
                   RunOptions(use_cache=False, metrics_db=metrics_db, log_output=not quiet, cluster=cluster,
                              cluster_workers=on))
    first = Path(against) if against else builds[0][1]
    names = [f"stage{n}" for n in stages]
    if against:  # a build of other inputs is no evidence either way
        same_inputs(first, builds[-1][1], names)
    diffs = compare_work_dirs(first, builds[-1][1], names)
    checks = as_checks(diffs)
    Recorder(top, top.name, profile.name).add_all(checks)
    frames = [d.differing for d in diffs if len(d.differing)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stage", "path", "cause"])
    table.to_csv(top / "differing.csv", index=False)
    return Reproduced(top, diffs, checks, table)
