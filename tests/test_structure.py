"""The library's rooms and floors, read from its own imports: no circle, nothing runs back up, one
of each mechanism in its one place, every exception in errors.py."""

import ast
import re

from .conftest import ROOT

LIB = ROOT / "serpentlib"
ROOMS = ("build", "pkg", "records", "stages")
BOTTOM = {"errors", "paths", "rows", "files", "hashes", "elf"}  # small modules everyone may import
FLOORS = {"bottom": 0, "build": 1, "pkg": 2, "records": 3, "stages": 4, "cli": 5}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(LIB.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return out


def imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The serpentlib modules `name` imports anywhere in it (inside functions too)."""
    package = name if name in known and (LIB / name.replace("serpentlib.", "").replace(".", "/")).is_dir() \
        else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, tree, known) for name, tree in mods.items()}


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] in ROOMS:
        return parts[1]
    return "cli" if parts[1] == "cli" else "bottom" if parts[1] in BOTTOM else "elsewhere"


def test_no_import_circle():
    g = graph()
    state: dict[str, str] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == "done":
            return
        assert state.get(m) != "visiting", "import circle: " + " -> ".join(path[path.index(m):] + [m])
        state[m] = "visiting"
        for dep in sorted(g[m]):
            visit(dep, path + [m])
        state[m] = "done"

    for m in sorted(g):
        visit(m, [])


def test_every_module_lives_in_a_room():
    """Only the CLI, the package's face and the bottom modules stand beside the rooms."""
    assert [m for m in graph() if room(m) == "elsewhere"] == []


def test_no_import_runs_back_up():
    """bottom < build < pkg < records < stages < cli: a room imports only rooms below it (and
    itself); the package faces (__init__.py of a room) hand names on and are left out."""
    g = graph()
    faces = {f"serpentlib.{r}" for r in ROOMS} | {"serpentlib"}
    up = [f"{m} -> {d}" for m, deps in g.items() if m not in faces for d in deps
          if d not in faces and FLOORS[room(d)] > FLOORS[room(m)]]
    assert up == []


def _sources() -> dict[str, str]:
    return {str(p.relative_to(LIB)): p.read_text() for p in LIB.rglob("*.py")}


def test_one_of_each_mechanism_in_its_place():
    """The one tree walk, atomic write, file lock, ELF parser and phase timer each live in one
    module; every other module calls it."""
    places = {r"\bos\.(walk|scandir)\(|\.rglob\(": "files.py", r"os\.fsync\(": "files.py",
              r"fcntl\.flock\(": "build/lock.py", r"\bELFFile\(": "elf.py", r"resource\.getrusage\(": "rows.py",
              r"iter\(lambda: \w+\.read\(": "hashes.py"}
    found = {pattern: sorted(f for f, text in _sources().items() if re.search(pattern, text, re.MULTILINE))
             for pattern in places}
    assert found == {pattern: [place] for pattern, place in places.items()}


def test_every_exception_class_is_in_errors():
    elsewhere = []
    for name, text in _sources().items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception", "Interrupt", "Failed"))
                    for b in node.bases) and name != "errors.py":
                elsewhere.append(f"{name}: {node.name}")
    assert elsewhere == []
