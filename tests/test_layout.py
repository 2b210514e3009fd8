import json
import re
import subprocess
import sys
import tomllib

import yaml

from serpentlib.hostsetup import deb822_with_sources, one_line_with_sources

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


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1).splitlines()
    commands = [line.split("#")[0].strip() for line in block if line.strip()]
    assert commands == ["make bootstrap", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_deb_src_is_derived_from_the_machines_own_entries():
    deb822 = "Types: deb\nURIs: http://archive.invalid/debian\nSuites: bookworm\nComponents: main\n\n" \
             "Types: deb-src\nURIs: http://x.invalid\nSuites: y\nComponents: main\n"
    out = deb822_with_sources(deb822)
    assert out.startswith("Types: deb-src\nURIs: http://archive.invalid/debian\nSuites: bookworm")
    assert out.count("Types:") == 1
    assert one_line_with_sources("deb [arch=amd64] http://a.invalid/debian bookworm main\n# deb x\n") == \
        "deb-src [arch=amd64] http://a.invalid/debian bookworm main\n"


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
