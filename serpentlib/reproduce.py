"""Reproducibility: build a profile twice from clean work directories at different paths and
compare every file of every stage's tree by sha256."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import SerpentError
from .metrics import CheckRecord

STAGE_TREES = {"stage1": "stage1/sysroot", "stage2": "stage2/root", "stage3": "stage3/root", "stage4": "stage4/repo"}


@dataclass
class TreeDiff:
    stage: str
    files: int
    identical: int
    differing: pd.DataFrame  # path, cause

    @property
    def percent(self) -> float:
        return round(100 * self.identical / self.files, 2) if self.files else 100.0


def tree_paths(root: Path) -> list[str]:
    """Every file and link under `root`, relative to it."""
    return [str((Path(d) / n).relative_to(root)) for d, _dirs, names in os.walk(root) for n in names]


def fingerprint(root: Path, paths=None) -> dict[str, str]:
    """relative path -> sha256 of a file, or `-> target` of a link; every path under `root`, or
    only `paths` (those missing are left out)."""
    if paths is None:
        paths = tree_paths(root)
    out = {}
    for rel in paths:
        p = Path(root) / rel
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[rel] = h.hexdigest()
    return out


def cause(a: Path, b: Path, work_a: Path, work_b: Path) -> str:
    """A first guess at why two builds of a file differ; diffoscope's first lines where installed."""
    if not (os.path.lexists(a) and os.path.lexists(b)):  # a link may lead nowhere outside its root
        return "only in one build"
    if a.is_symlink() or b.is_symlink():
        return f"links differ: {os.readlink(a) if a.is_symlink() else 'file'} vs {os.readlink(b) if b.is_symlink() else 'file'}"
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
    """Two trees file by file (or only `paths`, relative to both), each difference with its cause."""
    fb = fingerprint(tb, paths)
    fa = fingerprint(ta, paths)
    names = sorted(set(fa) | set(fb))
    bad = [p for p in names if fa.get(p) != fb.get(p)]
    rows = [{"stage": stage, "path": "/" + p, "cause": cause(ta / p, tb / p, work_a, work_b)} for p in bad]
    return TreeDiff(stage, len(names), len(names) - len(bad), pd.DataFrame(rows, columns=["stage", "path", "cause"]))


def same_inputs(work_a: Path, work_b: Path, stages: list[str]) -> None:
    """Two builds of a stage are worth comparing only when made from the same inputs: recipes,
    flags and earlier stages, wherever their work directories are (the markers' `inputs`)."""
    from .stages.common import stage_marker

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
