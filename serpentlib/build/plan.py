"""Build order: a topological sort of recipes by `depends`, with cycles named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
