"""What more machines would buy, from a run's records: per stage, the build time of each package
(cost.csv's, so a package taken from the cache counts the build behind it), what each waited for
(graph.csv), and from them the critical path, the CPU bound (CPU seconds over the cores), the
measured makespan and the makespan a list schedule predicts on 1, 2, 4, 8 and 16 machines of this
one's kind (each package on one machine, as long as it took here; the longest ready one first).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..build.plan import GRAPH, SEES_ROOT, waits
from ..build.recipes import load_recipes
from ..paths import RECIPES
from . import cost, metrics

MACHINES = (1, 2, 4, 8, 16)


def graph(run_dir: Path) -> dict[str, dict[str, list[str]]]:
    """{stage: {package: the packages it waited for}}, in merge order. A run from before graph.csv
    ran its builds one after another in that order: its graph is the one the stage makes of it
    now (plan.waits, with which packages the project's recipes build on the host)."""
    path = Path(run_dir) / GRAPH
    if not path.is_file():
        return derived_graph(metrics.load(run_dir, "phases"))
    out: dict[str, dict[str, list[str]]] = {}
    for row in pd.read_csv(path, keep_default_na=False).itertuples():
        out.setdefault(row.stage, {})[row.package] = str(row.waits_on).split()
    return out


def derived_graph(phases: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    out = {}
    for stage in SEES_ROOT:
        order = list(dict.fromkeys(phases[phases["stage"] == stage]["package"]))
        if not order:
            continue
        known = [n for n in order if (RECIPES / n / "recipe.yaml").is_file()]
        # The run's final compiler is not known here: a package built on the host by some is taken as built there.
        host = {n for n, r in load_recipes(RECIPES, known).items() if r.build_for(stage).on_host}
        out[stage] = waits(stage, order, host)
    return out


def build_times(run_dir: Path) -> pd.DataFrame:
    """Per stage and package: wall and CPU seconds of its build (the real one, for a cached package)."""
    spent = cost.load(run_dir)
    if spent.empty:  # no cost.csv: this run's own build phases
        phases = metrics.load(run_dir, "phases")
        spent = phases[phases["origin"] == "built"].groupby(["stage", "package"], sort=False)[
            ["wall_s", "user_s", "sys_s"]].sum().reset_index()
    return spent.assign(cpu_s=spent["user_s"] + spent["sys_s"])[["stage", "package", "wall_s", "cpu_s"]]


def critical_path(times: dict[str, float], waits: dict[str, list[str]]) -> tuple[float, list[str]]:
    """The longest chain of waits (waits name earlier packages only: merge order)."""
    longest: dict[str, tuple[float, list[str]]] = {}
    for name in waits:
        before = max((longest[w] for w in waits[name] if w in longest), default=(0.0, []), key=lambda x: x[0])
        longest[name] = (before[0] + times.get(name, 0.0), before[1] + [name])
    return max(longest.values(), default=(0.0, []), key=lambda x: x[0])


def list_schedule(times: dict[str, float], waits: dict[str, list[str]], machines: int) -> float:
    """The makespan of a greedy list schedule: whenever a machine is free, the longest package
    whose waits are over starts on it."""
    finish: dict[str, float] = {}
    free = [0.0] * machines
    left = list(waits)
    while left:
        ready = [(max((finish[w] for w in waits[n]), default=0.0), n) for n in left
                 if all(w in finish for w in waits[n])]
        now = min(free)
        startable = [r for r in ready if r[0] <= now] or [min(ready)]
        at, name = max(startable, key=lambda r: (times.get(r[1], 0.0), -left.index(r[1])))
        i = free.index(min(free))
        start = max(free[i], at)
        free[i] = finish[name] = start + times.get(name, 0.0)
        left.remove(name)
    return max(finish.values(), default=0.0)


def measured_makespan(phases: pd.DataFrame) -> float:
    """From the first build phase's start to the last one's end (seconds)."""
    built = phases[phases["phase"] != "cached"]
    if built.empty:
        return 0.0
    start, end = pd.to_datetime(built["start"]), pd.to_datetime(built["end"])
    return float((end.max() - start.min()).total_seconds())


def scale_table(run_dir: Path, cores: int | None = None) -> pd.DataFrame:
    """Per stage: the measured makespan of its builds, the critical path, CPU ÷ cores, the ratio of
    the makespan to the larger bound, and the predicted makespan on each of MACHINES."""
    import json
    info = json.loads((Path(run_dir) / "run.json").read_text())
    cores = cores or int(info.get("host", {}).get("cpus") or 1)
    times, graphs, phases = build_times(run_dir), graph(run_dir), metrics.load(run_dir, "phases")
    rows = []
    for stage, waited in graphs.items():
        mine = times[times["stage"] == stage]
        wall = dict(zip(mine["package"], mine["wall_s"]))
        path_s, path = critical_path(wall, waited)
        cpu_bound = float(mine["cpu_s"].sum()) / cores
        made = measured_makespan(phases[phases["stage"] == stage])
        row = {"stage": stage, "packages": len(waited), "makespan_s": round(made, 1),
               "critical_path_s": round(path_s, 1), "cpu_bound_s": round(cpu_bound, 1),
               "ratio": round(made / max(path_s, cpu_bound), 2) if made and max(path_s, cpu_bound) else None,
               "bound_by": " → ".join(sorted(path, key=lambda n: -wall.get(n, 0))[:3]) if path_s >= cpu_bound
               else "CPU"}
        row.update({f"on_{m}": round(list_schedule(wall, waited, m), 1) for m in MACHINES})
        rows.append(row)
    return pd.DataFrame(rows)
