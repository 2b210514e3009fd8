"""Profiles (params/<name>.yaml): the papermill parameters of every stage notebook.

A profile has common keys at the top and per-stage keys under `stages: {1: {...}, ...}`.
The parameters of stage N are the common keys, the stage's keys and the run's own
(work_dir, run_dir, run_id); each must be declared in that notebook's `parameters` cell.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ProfileError
from ..paths import PARAMS

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


@dataclass(frozen=True)
class StageParams:
    """One stage's parameters as one typed object, from the profile (and the run) to the stage
    function: the fields of every stage notebook's parameters cell. A stage reads the ones it has."""

    work_dir: str                       # roots and build trees go under <work_dir>/stageN
    run_dir: str                        # records, logs and the executed notebook go here
    run_id: str = ""
    profile: str = ""
    seed: dict = field(default_factory=dict)  # stage 0: {suite, packages, mirror}
    target: str = "x86_64-serpent-linux-musl"
    packages: list[str] = field(default_factory=list)
    recipes_dir: str = ""               # empty: the project's recipes/
    store_dir: str = ""                 # empty: ~/.cache/serpentlib/sources
    mirrors: list[str] = field(default_factory=list)
    fetch_upstream: bool = True
    jobs: int = 0                       # 0: all cores
    cflags: str = "-O2 -pipe"
    use_cache: bool = True
    recheck: bool = False               # check again when every package came from the cache
    build_tools: list[str] = field(default_factory=list)   # stage 1: built by the seed for the seed
    flags: dict = field(default_factory=dict)              # stage 3: tuning groups
    compiler: str = "tcc"               # stages 3 and 4: the final compiler, tcc or clang
    fixpoint: bool = True               # stage 3: the final compiler rebuilds itself
    lit_suites: list[str] = field(default_factory=list)    # stage 3, clang: LLVM's lit suites
    relink: list[str] = field(default_factory=list)        # stage 3: packages built again once all are in
    allowed_tree: list[str] | None = None                  # stage 4
    policy_exceptions: list[dict] = field(default_factory=list)  # stage 4
    boot: bool = False                  # stage 4: boot the root in QEMU and run the checks inside it
    boot_timeout: float = 0.0           # stage 4: seconds before a boot counts as hung (0: 60 KVM, 300 TCG)
    cluster: str = ""                   # a Dask scheduler's address: builds that see stages 0 and 1 alone go there
    cluster_workers: list[str] = field(default_factory=list)  # only these workers (names) of it (default: all)

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> StageParams:
        """The parameters a notebook's parameters cell set (its globals), or any mapping holding them."""
        return cls(**{f.name: namespace[f.name] for f in fields(cls) if f.name in namespace})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_profile(name_or_path: str | Path, params_dir: Path = PARAMS) -> Profile:
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
