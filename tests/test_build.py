"""One package's phases: what a failing phase done in this process records."""

from serpentlib.build import PackageBuild, StageContext
from serpentlib.recipes import load_recipe
from serpentlib.sandbox import Sandbox
from serpentlib.sources import SourceStore

from .conftest import FIXTURES


def test_a_host_phase_failing_with_any_exception_is_recorded_failed_with_its_traceback(tmp_path):
    """Restoring a cached build into a root whose /usr is a file: merging fails with an OSError
    (not the project's own error). The phase's record says it failed; its log has the traceback."""
    cached = tmp_path / "cached"
    (cached / "usr" / "bin").mkdir(parents=True)
    (cached / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "usr").write_text("a file where the package needs a directory\n")
    records = []
    ctx = StageContext(stage="stage3", work=tmp_path / "work", install_root=root, store=SourceStore(tmp_path / "store"),
                       sandbox=Sandbox(), logs=tmp_path / "logs", on_record=records.append)
    build = PackageBuild(load_recipe(FIXTURES / "recipes" / "good" / "broken-build" / "recipe.yaml"), ctx)
    try:
        build.restore(cached)
    except OSError:
        pass
    else:
        raise AssertionError("merging over a file should have failed")
    assert [(r.phase, r.exit_code != 0) for r in records] == [("cached", True)], records
    log = (tmp_path / "logs" / "broken-build" / "cached.log").read_text()
    assert "Traceback" in log and "FileExistsError" in log and "merge_tree" in log, log
