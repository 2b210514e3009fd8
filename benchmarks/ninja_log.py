"""Where a ninja build's time went, from the `.ninja_log` a build keeps beside its logs
(`<run>/logs/<stage>/<package>/ninja_log`): steps and seconds per kind (compile, link,
archive, generate), the longest steps, and the wall time the links alone held the build.

    python benchmarks/ninja_log.py RUN/logs/stage2/llvm/ninja_log [more logs...]
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path


def kind(output: str) -> str:
    if output.endswith((".o", ".obj")):
        return "compile"
    if output.endswith(".a"):
        return "archive"
    if output.startswith("bin/") or ".so" in output:
        return "link"
    return "generate"


def read(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, output) per step; a rerun's steps (ninja appends) count once, the last."""
    steps: dict[str, tuple[float, float, str]] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        start, end, _mtime, output, _hash = line.split("\t")
        steps[output] = (int(start) / 1000, int(end) / 1000, output)
    return list(steps.values())


def covered(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the spans ran."""
    total, last = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= last:
            continue
        total += end - max(start, last)
        last = end
    return total


def report(path: Path) -> None:
    steps = read(path)
    by_kind: dict[str, list[float]] = defaultdict(list)
    for start, end, output in steps:
        by_kind[kind(output)].append(end - start)
    wall = max(e for _, e, _ in steps) - min(s for s, _, _ in steps)
    busy = sum(e - s for s, e, _ in steps)
    print(f"{path}: {len(steps)} steps, {wall / 60:.1f} min from first start to last end "
          f"(a resumed build's pause included), {busy / 60:.1f} min of steps summed")
    for k in ("compile", "generate", "archive", "link"):
        times = by_kind.get(k, [])
        print(f"  {k:9} {len(times):5} steps {sum(times) / 60:7.1f} min summed, longest {max(times, default=0):6.1f} s")
    links = [(s, e) for s, e, o in steps if kind(o) == "link"]
    print(f"  links held the build {covered(links) / 60:.1f} min of wall time")
    for start, end, output in sorted(steps, key=lambda t: t[0] - t[1])[:8]:
        print(f"  {end - start:7.1f} s  {output}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        report(Path(arg))
