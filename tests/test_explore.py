"""explore.ipynb's interactive view as JupyterLab runs it: widget callbacks on a thread of their
own (JupyterLab's kernel subshells), every stage's packages, whole plots, and a failure said."""

import threading

import pytest
from IPython.core.interactiveshell import InteractiveShell

from serpentlib.records.explore import Explorer
from serpentlib.records.history import History

from .conftest import PACKAGES, make_run


@pytest.fixture
def store(tmp_path):
    InteractiveShell.instance()  # the display formatter the output area uses, as in a kernel
    db = tmp_path / "metrics.sqlite"
    with History(db) as h:
        for i in range(3):
            h.ingest(make_run(tmp_path, f"r{i}", {**PACKAGES, "make": 16.0 + 2 * i}))
        # Stage 4 records phases (manifest, archive) and no sizes.
        stage4 = make_run(tmp_path, "r4", {"bash": 1.0, "root": 2.0}, stage="stage4")
        (stage4 / "sizes.csv").unlink()
        h.ingest(stage4)
    history = History(db)
    yield history
    history.close()


def outputs(explorer: Explorer) -> tuple[str, list[str]]:
    text = "".join(o.get("text", "") for o in explorer.out.outputs)
    kinds = [k for o in explorer.out.outputs for k in o.get("data", {})]
    return text, kinds


def on_another_thread(change) -> None:
    errors = []

    def run():
        try:
            change()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []


def test_every_widget_change_on_another_thread_draws_a_whole_view(store):
    explorer = Explorer(store, "stage2")
    explorer.redraw()
    for change in (lambda: setattr(explorer.metric, "value", "user_s"),
                   lambda: setattr(explorer.package, "value", "make"),
                   lambda: setattr(explorer.metric, "value", "installed_bytes"),
                   lambda: setattr(explorer.runs, "value", ("r0", "r2")),
                   lambda: setattr(explorer.stage, "value", "stage4"),
                   lambda: setattr(explorer.stage, "value", "stage2")):
        on_another_thread(change)
        text, kinds = outputs(explorer)
        assert "failed" not in text and "image/png" in kinds, text
    assert explorer.package.value in store.packages("stage2")


def test_every_stage_lists_its_packages_and_a_change_of_stage_picks_one(store):
    assert store.packages("stage4") == ["bash", "root"], "from phases: stage 4 records no sizes"
    explorer = Explorer(store, "stage2")
    explorer.package.value = "dash"
    explorer.stage.value = "stage4"
    assert explorer.package.options == ("bash", "root") and explorer.package.value == "bash"
    explorer.stage.value = "stage2"
    assert explorer.package.value == "bash", "kept where the new stage has it"
    explorer.stage.value = "stage1"
    text, kinds = outputs(explorer)
    assert explorer.package.value is None and "no package recorded in this stage yet" in text


def test_a_view_that_fails_says_so_instead_of_half_a_screen(store, monkeypatch):
    explorer = Explorer(store, "stage2")

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(store, "trend", broken)
    explorer.redraw()
    text, kinds = outputs(explorer)
    assert "this view failed: RuntimeError: the store went away" in text and kinds == []
