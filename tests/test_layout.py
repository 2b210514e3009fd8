import ast
import json
import re
import subprocess
import sys
import tomllib

import yaml

from serpentlib.build.seed import SeedSpec, mirror_from_apt

from .conftest import ROOT


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(d) for d in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python"}
    assert listed == wanted


def test_notebooks_have_no_committed_outputs():
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), nb.name
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), nb.name


def test_every_notebook_cell_is_valid_python():
    """A syntax error in a stage notebook would fail only when that stage runs, an hour in."""
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                try:
                    ast.parse(source)
                except SyntaxError as exc:
                    raise AssertionError(f"{nb.name}, cell {i}: {exc}\n{source}") from None


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1).splitlines()
    commands = [line.split("#")[0].strip() for line in block if line.strip()]
    assert commands == ["make bootstrap", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_seed_mirror_is_the_hosts_own_debian_archive(tmp_path):
    """deb822 and one-line entries; security, updates-only, disabled and non-Debian entries are passed over."""
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "a.sources").write_text(
        "Types: deb\nURIs: http://other.invalid/repo\nSuites: nodistro\nComponents: main\n\n"
        "Types: deb\nURIs: http://sec.invalid/debian-security\nSuites: trixie-security\nComponents: main\n\n"
        "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: trixie\nComponents: main\n")
    assert mirror_from_apt(etc) is None
    (etc / "sources.list").write_text("# deb http://x.invalid/debian bookworm main\n"
                                       "deb [arch=amd64] http://a.invalid/debian/ bookworm main contrib\n")
    assert mirror_from_apt(etc) == "http://a.invalid/debian"
    (etc / "sources.list").unlink()
    (etc / "sources.list.d" / "b.sources").write_text(
        "Types: deb deb-src\nURIs: http://b.invalid/debian\nSuites: trixie trixie-updates\nComponents: main\n")
    assert mirror_from_apt(etc) == "http://b.invalid/debian"


def test_the_seed_key_is_its_recipe_not_its_mirror_nor_package_order():
    a = SeedSpec.from_params({"suite": "bookworm", "packages": ["clang", "make"], "mirror": "http://a.invalid"})
    assert a.key == SeedSpec.from_params({"suite": "bookworm", "packages": ["make", "clang", "make"]}).key
    assert a.key != SeedSpec.from_params({"suite": "trixie", "packages": ["clang", "make"]}).key
    assert a.key != SeedSpec.from_params({"suite": "bookworm", "packages": ["clang"]}).key


def test_fast_tests_never_start_the_bootstrap():
    """`make test-fast` (-m "not build") collects no test that needs the mini run (libc-support's
    comparisons need the stage4 root), and still collects libc-support's own fast tests."""
    import inspect

    from . import test_libc_support
    needs_build = {name for name, fn in vars(test_libc_support).items()
                   if name.startswith("test_") and "libc_tool" in inspect.signature(fn).parameters}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "not build", "tests/test_libc_support.py"], capture_output=True, text=True, cwd=ROOT)
    collected = {line.split("::")[1].split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    assert needs_build and "test_recipe_builds_its_own_sources" in collected, proc.stdout[-2000:]
    assert not collected & needs_build, f"collected without the build mark: {sorted(collected & needs_build)}"
