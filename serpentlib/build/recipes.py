"""The recipe schema: load `recipes/<name>/recipe.yaml`, validate it against one field table.

A recipe is data. Unknown keys are rejected with a did-you-mean; every error names the file,
the key and a fix.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import RecipeError
from .licenses import license_problem

STAGES = ("stage1", "stage2", "stage3", "stage4")
# Runs that are not a stage of their own build as a stage does: the lane cross-builds as stage 2.
BUILDS_LIKE = {"lane": "stage2"}
STYLES = ("autotools", "cmake", "meson", "make", "script")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+._-]*$")
VERSION_RE = re.compile(r"^[0-9][0-9A-Za-z]*(?:[.+~_-][0-9A-Za-z]+)*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PATCH_HEADERS = ("Origin:", "Upstream-Status:")


@dataclass(frozen=True)
class Field:
    """One key of a mapping: its type, whether it must be there, and its default."""

    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""


RECIPE_FIELDS: dict[str, Field] = {
    "name": Field(str, True, help="the package name, same as the recipe's folder"),
    "version": Field((str, int, float), True, help="upstream version, e.g. 1.2.3"),
    "release": Field(int, False, 1, help="the package release: raise it when the package changes, not upstream"),
    "summary": Field(str, True, help="one line"),
    "license": Field(str, True, help="an SPDX expression"),
    "homepage": Field(str, False, ""),
    "sources": Field(list, True, help="a list of {url, sha256}; [] with source_dir"),
    "source_dir": Field(str, False, "", help="a folder beside the recipe holding this project's own sources"),
    "patches": Field(list, False, [], help="paths under the recipe folder"),
    "prepare": Field(str, False, "", help="shell lines run on the host in the patched source, e.g. autoreconf"),
    "depends": Field(list, False, [], help="names of recipes built before this one"),
    "build": Field(dict, False, {}, help="how to build: style, configure, make, env, ..."),
    "checks": Field(list, False, []),
    **{stage: Field(dict, False, {}, help=f"build overrides for {stage}") for stage in STAGES},
    "relink": Field(dict, False, {}, help="build overrides for the relink's second pass, over the stage's"),
}

SOURCE_FIELDS: dict[str, Field] = {
    "url": Field(str, False, "", help="the upstream download URL (may be left out for a file only Debian keeps)"),
    "sha256": Field(str, True, help="64 lowercase hex digits: `sha256sum FILE`"),
    "debian": Field(str, False, None, help="the Debian source package that ships this exact file"),
    "file": Field(str, False, None, help="the file name, when the URL does not end in it"),
    "extract": Field(list, False, [], help="paths inside the archive to extract (all if empty)"),
    "strip": Field(int, False, 1, help="leading path components to drop"),
    "repacked": Field(bool, False, False, help="true: the sha256 is of a repack (e.g. Debian's), "
                                               "so the upstream URL is for reference and not fetched"),
}

BUILD_FIELDS: dict[str, Field] = {
    "style": Field(str, False, "autotools", help=" | ".join(STYLES)),
    "subdir": Field(str, False, "", help="the source subdirectory the build starts in"),
    "configure": Field((list, str), False, [], help="configure/cmake arguments, or a script for style: script"),
    "build": Field((list, str), False, [], help="make arguments, or a script for style: script"),
    "install": Field((list, str), False, [], help="make install arguments, or a script for style: script"),
    "check": Field(str, False, "", help="shell lines run after build (the package's own tests), a phase of its own"),
    "in_tree": Field(bool, False, False, help="true: configure and build in the source tree, not a separate one"),
    "env": Field(dict, False, {}, help="variables for every phase; $VARS expand in the shell"),
    "pre_configure": Field(str, False, "", help="shell lines run in the source tree before configure"),
    "post_install": Field(str, False, "", help="shell lines run after install, e.g. links in $DESTDIR"),
    "on_host": Field((bool, list), False, False, help="true: build on the host with the stage1 toolchain, not in the "
                     "chroot; a list of final compilers, e.g. [tcc]: there only where the stage's is one of them"),
}

CHECK_FIELDS: dict[str, Field] = {
    "name": Field(str, False, "", help="a short name for the records (default: the command)"),
    "run": Field(str, True, help="a shell command run in the stage's root"),
    "expect": Field(str, False, "", help="text its output must contain"),
}


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str
    debian: str | None = None
    file: str | None = None
    extract: tuple[str, ...] = ()
    strip: int = 1
    repacked: bool = False

    @property
    def filename(self) -> str:
        return self.file or self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BuildSpec:
    style: str = "autotools"
    subdir: str = ""
    configure: tuple[str, ...] | str = ()
    build: tuple[str, ...] | str = ()
    install: tuple[str, ...] | str = ()
    check: str = ""
    in_tree: bool = False
    env: dict[str, str] = field(default_factory=dict)
    pre_configure: str = ""
    post_install: str = ""
    on_host: bool | tuple[str, ...] = False

    def built_on_host(self, compiler: str) -> bool:
        """Whether a stage whose final compiler is `compiler` builds this on the host."""
        return self.on_host is True or (isinstance(self.on_host, tuple) and compiler in self.on_host)


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    summary: str
    license: str
    sources: tuple[Source, ...]
    path: Path
    homepage: str = ""
    patches: tuple[Path, ...] = ()
    prepare: str = ""
    depends: tuple[str, ...] = ()
    build: BuildSpec = BuildSpec()
    checks: tuple[dict[str, str], ...] = ()
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_patches: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # a stage's own, after `patches`
    source_dir: Path | None = None
    release: int = 1  # the project's own sources: the source tree, no tarball
    # Each stage's build spec, merged and checked once (load_recipe checks every stage's first).
    specs: dict[str, BuildSpec] = field(default_factory=dict, compare=False, repr=False)
    relink: dict[str, Any] = field(default_factory=dict)  # the second pass's overrides (see relinked)

    def relinked(self) -> Recipe:
        """The relink's second pass, as recipe `<name>-relink`: its `relink:` overrides over each
        stage's (environments merged), so that its build, key and records are its own."""
        stages = {}
        for stage in STAGES:
            merged = {**self.stages.get(stage, {}), **self.relink}
            if "env" in self.stages.get(stage, {}) and "env" in self.relink:
                merged["env"] = {**self.stages[stage]["env"], **self.relink["env"]}
            stages[stage] = merged
        return replace(self, name=f"{self.name}-relink", stages=stages, specs={}, relink={})

    def patches_for(self, stage: str) -> tuple[Path, ...]:
        """The recipe's patches, then the stage's own (a fix only that stage's build needs)."""
        stage = BUILDS_LIKE.get(stage, stage)
        return self.patches + self.stage_patches.get(stage, ())

    def build_for(self, stage: str) -> BuildSpec:
        """The build spec with the stage's overrides merged over the common one."""
        stage = BUILDS_LIKE.get(stage, stage)
        if stage not in self.specs:
            merged: dict[str, Any] = {k: _plain(getattr(self.build, k)) for k in BUILD_FIELDS}
            for key, value in self.stages.get(stage, {}).items():
                if key == "env":
                    value = {**merged["env"], **value}
                merged[key] = value
            self.specs[stage] = _build_spec(merged, self.path / "recipe.yaml", stage)
        return self.specs[stage]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _fail(path: Path, key: str, problem: str, fix: str) -> RecipeError:
    return RecipeError(f"{path}: {key}: {problem}", fix)


def _check_mapping(data: Any, fields: dict[str, Field], path: Path, where: str) -> dict[str, Any]:
    """Validate keys and types of one mapping; return it with defaults filled in."""
    if not isinstance(data, dict):
        raise _fail(path, where or "(top level)", f"expected a mapping, found {type(data).__name__}",
                    "write `key: value` lines")
    out: dict[str, Any] = {}
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            fix = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(fields)}"
            raise _fail(path, f"{where}{key}", "unknown key", fix)
    for key, spec in fields.items():
        if key not in data:
            if spec.required:
                raise _fail(path, f"{where}{key}", "missing", f"add `{key}:` ({spec.help})")
            out[key] = spec.default
            continue
        value = data[key]
        if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
            want = spec.type.__name__ if isinstance(spec.type, type) else "/".join(t.__name__ for t in spec.type)
            raise _fail(path, f"{where}{key}", f"expected {want}, found {type(value).__name__}",
                        spec.help or f"give a {want}")
        out[key] = value
    return out


def _build_spec(data: dict[str, Any], path: Path, where: str) -> BuildSpec:
    d = _check_mapping(data, BUILD_FIELDS, path, f"{where}.")
    if d["style"] not in STYLES:
        near = difflib.get_close_matches(d["style"], STYLES, n=1)
        raise _fail(path, f"{where}.style", f"unknown style '{d['style']}'",
                    f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(STYLES)}")
    for key in ("configure", "build", "install"):
        value = d[key]
        d[key] = value if isinstance(value, str) else tuple(str(v) for v in value)
    if isinstance(d["on_host"], list):
        d["on_host"] = tuple(str(c) for c in d["on_host"])
    if not all(isinstance(k, str) for k in d["env"]):
        raise _fail(path, f"{where}.env", "variable names must be strings", "quote the names")
    d["env"] = {k: str(v) for k, v in d["env"].items()}
    return BuildSpec(**d)


def _source(data: Any, path: Path, index: int) -> Source:
    where = f"sources[{index}]."
    d = _check_mapping(data, SOURCE_FIELDS, path, where)
    sha = d["sha256"]
    if not d["url"] and not (d["debian"] and d["file"]):
        raise _fail(path, f"{where}url", "missing",
                    "give the upstream URL, or `debian:` and `file:` for a file only Debian's archive keeps")
    if not SHA256_RE.match(sha):
        raise _fail(path, f"{where}sha256", f"'{sha}' is not a sha256",
                    "give 64 lowercase hex digits, as `sha256sum FILE` prints them")
    return Source(url=d["url"], sha256=sha, debian=d["debian"], file=d["file"],
                  extract=tuple(str(p) for p in d["extract"]), strip=d["strip"], repacked=d["repacked"])


def patch_headers(path: Path) -> dict[str, str]:
    """A patch's DEP-3 style headers (Origin, Upstream-Status, Subject...), before its `---` line."""
    head = path.read_text(errors="replace").split("\n---", 1)[0]
    return {m[1]: m[2].strip() for m in re.finditer(r"^([A-Za-z][\w-]*):[ \t]*(.*)$", head, re.MULTILINE)}


def check_patch(path: Path, recipe_file: Path) -> None:
    """A patch must exist and say where it came from (DEP-3 style headers)."""
    if not path.is_file():
        raise _fail(recipe_file, "patches", f"{path.name} does not exist (looked in {path.parent})",
                    "add the file under the recipe's patches/ folder or drop it from the list")
    headers = patch_headers(path)
    missing = [h for h in PATCH_HEADERS if h.rstrip(":") not in headers]
    if missing:
        raise _fail(recipe_file, "patches", f"{path.name} lacks the header(s) {', '.join(missing)}",
                    "start the patch with 'Origin: <url or \"serpentlib\">' and "
                    "'Upstream-Status: <submitted|accepted|inappropriate|pending>' lines")


def load_recipe(recipe_file: Path) -> Recipe:
    """Load and validate one recipe.yaml."""
    recipe_file = Path(recipe_file)
    try:
        data = yaml.safe_load(recipe_file.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{recipe_file}: no such recipe file",
                          "create recipes/<name>/recipe.yaml or check the name") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{recipe_file}: not valid YAML: {exc}", "fix the YAML syntax") from None
    d = _check_mapping(data, RECIPE_FIELDS, recipe_file, "")
    name = d["name"]
    if not NAME_RE.match(name):
        raise _fail(recipe_file, "name", f"'{name}' is not a valid name",
                    "use lowercase letters, digits and + . _ -")
    if recipe_file.parent.name != name:
        raise _fail(recipe_file, "name", f"'{name}' differs from its folder '{recipe_file.parent.name}'",
                    f"rename the folder to recipes/{name}/ or fix the name")
    version = str(d["version"])
    if not VERSION_RE.match(version):
        raise _fail(recipe_file, "version", f"'{version}' is malformed",
                    "use the upstream version: digits and letters separated by . + ~ _ -, e.g. 1.2.3")
    problem = license_problem(str(d["license"]))
    if problem:
        raise _fail(recipe_file, "license", problem,
                    "give an SPDX license expression with identifiers from the SPDX list, e.g. "
                    "`GPL-2.0-or-later`, `MIT AND BSD-3-Clause`, `Apache-2.0 WITH LLVM-exception`")
    source_dir = None
    if d["source_dir"]:
        source_dir = recipe_file.parent / d["source_dir"]
        if not source_dir.is_dir() or Path(d["source_dir"]).is_absolute() or ".." in Path(d["source_dir"]).parts:
            raise _fail(recipe_file, "source_dir", f"{source_dir} is not a folder inside the recipe's",
                        "name a folder beside recipe.yaml, e.g. `source_dir: src`")
        if d["sources"]:
            raise _fail(recipe_file, "sources", "given along with source_dir",
                        "use one: upstream sources, or the project's own in source_dir")
    elif not d["sources"]:
        raise _fail(recipe_file, "sources", "empty", "list at least one {url, sha256}, or give source_dir")
    sources = tuple(_source(s, recipe_file, i) for i, s in enumerate(d["sources"]))
    patches = tuple(recipe_file.parent / str(p) for p in d["patches"])
    for patch in patches:
        check_patch(patch, recipe_file)
    depends = tuple(str(x) for x in d["depends"])
    if name in depends:
        raise _fail(recipe_file, "depends", f"'{name}' depends on itself", "remove it from depends")
    checks = tuple(_check_mapping(c, CHECK_FIELDS, recipe_file, f"checks[{i}].")
                   for i, c in enumerate(d["checks"]))
    stages = {s: dict(d[s]) for s in STAGES if d[s]}
    stage_patches = {}
    for stage, overrides in stages.items():  # `stageN: {patches: [...]}`: more patches for that stage
        extra = overrides.pop("patches", [])
        if not isinstance(extra, list):
            raise _fail(recipe_file, f"{stage}.patches", f"expected a list, got {extra!r}",
                        "list paths under the recipe folder, e.g. [patches/0002-fix.patch]")
        stage_patches[stage] = tuple(recipe_file.parent / str(x) for x in extra)
        for patch in stage_patches[stage]:
            check_patch(patch, recipe_file)
    recipe = Recipe(name=name, version=version, summary=d["summary"], license=d["license"],
                    homepage=d["homepage"], sources=sources, path=recipe_file.parent,
                    patches=patches, prepare=d["prepare"], depends=depends,
                    build=_build_spec(d["build"], recipe_file, "build"), checks=checks, stages=stages,
                    stage_patches={k: v for k, v in stage_patches.items() if v}, source_dir=source_dir, release=d["release"],
                    relink=dict(d["relink"]))
    for stage in stages:  # validate each stage's overrides now, not mid-build
        recipe.build_for(stage)
    if recipe.relink:
        for stage in STAGES:
            recipe.relinked().build_for(stage)
    return recipe


def load_recipes(recipes_dir: Path, names: list[str] | None = None) -> dict[str, Recipe]:
    """Load the named recipes (all when `names` is None); unknown names get a did-you-mean."""
    recipes_dir = Path(recipes_dir)
    available = sorted(p.parent.name for p in recipes_dir.glob("*/recipe.yaml"))
    wanted = available if names is None else list(names)
    out: dict[str, Recipe] = {}
    for name in wanted:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=1)
            raise RecipeError(f"{recipes_dir}: no recipe '{name}'",
                              f"did you mean '{near[0]}'?" if near else f"add {recipes_dir}/{name}/recipe.yaml")
        out[name] = load_recipe(recipes_dir / name / "recipe.yaml")
    return out
