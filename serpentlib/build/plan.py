"""Build order: a topological sort of recipes by `depends`, with cycles named; and the graph a
stage ran, recorded for what more machines would buy (records/schedule.py)."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import CycleError, RecipeError


def build_order(depends: Mapping[str, Sequence[str]], wanted: Sequence[str] | None = None) -> list[str]:
    """Order `wanted` (default: all) so every package comes after what it depends on.

    Dependencies outside `depends` are an error; ties keep the order given, so the
    result is stable for the same input.
    """
    order: list[str] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise CycleError(f"dependency cycle: {' -> '.join(cycle)}",
                             "remove one of these `depends` entries")
        if name not in depends:
            who = f" (needed by {path[-1]})" if path else ""
            raise RecipeError(f"no recipe '{name}'{who}", f"add recipes/{name}/recipe.yaml or fix `depends`")
        state[name] = "visiting"
        for dep in depends[name]:
            visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in (list(depends) if wanted is None else wanted):
        visit(name, [])
    return order


GRAPH = "graph.csv"  # in the run directory: stage, package, what its build waited for
# Whether a stage's builds see the root its packages merge into (stage 1's sysroot, stage 3's
# chroot, the lane's sysroot) and so wait for everything before them; stage 2's compile against
# stage 1 alone.
SEES_ROOT = {"stage1": True, "stage2": False, "stage3": True, "lane": True}


def waits(stage: str, order: list[str], on_host: set[str]) -> dict[str, list[str]]:
    """What each build of `stage` waits for: all before it where it sees the root (not one built
    on the host, which sees stages 0 and 1 alone), else nothing."""
    sees = SEES_ROOT.get(stage, False)
    return {name: (order[:i] if sees and name not in on_host else []) for i, name in enumerate(order)}


def record_graph(path: Path, stage: str, order: list[str], waits: Mapping[str, Sequence[str]]) -> None:
    """Append one stage's graph: each package in merge order, and the packages whose outputs its
    build saw (it started once they were merged)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["stage", "package", "waits_on"])
        w.writerows([stage, name, " ".join(waits[name])] for name in order)
