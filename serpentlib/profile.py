"""Profiles (params/<name>.yaml): the papermill parameters of every stage notebook.

A profile has common keys at the top and per-stage keys under `stages: {1: {...}, ...}`.
The parameters of stage N are the common keys, the stage's keys and the run's own
(work_dir, run_dir, run_id); each must be declared in that notebook's `parameters` cell.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ProfileError

PROJECT = Path(__file__).resolve().parent.parent
STAGE_NOTEBOOKS = {1: "stage1-toolchain.ipynb", 2: "stage2-runtime.ipynb", 3: "stage3-chroot.ipynb",
                   4: "stage4-packages.ipynb"}


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    common: dict[str, Any]
    stages: dict[int, dict[str, Any]]

    def parameters(self, stage: int) -> dict[str, Any]:
        return {"profile": self.name, **self.common, **self.stages.get(stage, {})}

    @property
    def stage_numbers(self) -> list[int]:
        return sorted(self.stages)


def load_profile(name_or_path: str | Path, params_dir: Path = PROJECT / "params") -> Profile:
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = params_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in params_dir.glob("*.yaml"))
        near = difflib.get_close_matches(str(name_or_path), known, n=1)
        raise ProfileError(f"no profile '{name_or_path}' ({path} does not exist)",
                           f"did you mean '{near[0]}'?" if near else f"known profiles: {', '.join(known) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping of parameters", "write `name: value` lines")
    stages_raw = data.pop("stages", {}) or {}
    if not isinstance(stages_raw, dict) or not all(isinstance(k, int) and k in STAGE_NOTEBOOKS for k in stages_raw):
        raise ProfileError(f"{path}: stages: expected a mapping from stage numbers (1-4) to parameters",
                           "write `stages: {1: {packages: [...]}}`")
    stages = {int(k): dict(v or {}) for k, v in stages_raw.items()}
    data.pop("profile", None)
    return Profile(name=path.stem, path=path, common=data, stages=stages)


def notebook_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The notebook's declared parameters: name -> {inferred_type_name, default, help}."""
    import papermill  # slow import: only when needed

    return papermill.inspect_notebook(str(notebook))


def _default_type(default: str | None) -> type | None:
    """The type of a parameter's default value as written in the notebook (untyped cells)."""
    try:
        value = ast.literal_eval(default or "")
    except (ValueError, SyntaxError):
        return None
    return None if value is None else type(value)


def check_parameters(notebook: Path, params: dict[str, Any], source: str) -> None:
    """Raise ProfileError for any parameter the notebook does not declare, or of the wrong type."""
    declared = notebook_parameters(notebook)
    for key, value in params.items():
        if key not in declared:
            near = difflib.get_close_matches(key, declared, n=1)
            raise ProfileError(f"{source}: '{key}' is not a parameter of {notebook.name}",
                               f"did you mean '{near[0]}'?" if near else
                               f"its parameters are: {', '.join(declared)}")
        want = _default_type(declared[key].get("default"))
        if want and value is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            raise ProfileError(f"{source}: '{key}' should be {want.__name__}, "
                               f"got {type(value).__name__} {value!r}",
                               f"see the parameters cell of {notebook.name}: {declared[key].get('help', '')}")
