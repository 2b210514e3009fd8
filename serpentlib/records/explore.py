"""The interactive view of explore.ipynb: pick runs, a stage, a package and a metric; the text, the
table and the plot follow.

Built for JupyterLab as people open it: widget callbacks may run on another thread than the one
that made the widgets (JupyterLab handles widget messages on a kernel subshell), so the store is
read through a connection of the calling thread (History), figures are made without pyplot's
global state (plots), and the output area is filled through its own API, not a `with` block. A
view that fails says so in the output area, whole, instead of leaving half of it.
"""

from __future__ import annotations

import traceback

import ipywidgets as w
import pandas as pd
from IPython.display import Image

from . import plots
from .history import History

STAGES = ("stage1", "stage2", "stage3", "stage4")
METRICS = ("wall_s", "user_s", "sys_s", "installed_bytes", "build_bytes", "source_bytes", "files", "elf_files")


class Explorer:
    """The widgets and what they show."""

    def __init__(self, history: History, stage: str = "stage3", metric: str = "wall_s", last: int = 50) -> None:
        self.history = history
        runs = history.runs()
        labels = [(f"{r.run_id}  ({r.profile}, {str(r.started)[:16]})", r.run_id) for r in runs.itertuples()]
        self.runs = w.SelectMultiple(options=labels, value=tuple(runs["run_id"].tail(last)), rows=8,
                                     description="runs", layout=w.Layout(width="44em"))
        self.stage = w.Dropdown(options=STAGES, value=stage, description="stage")
        self.package = w.Dropdown(options=history.packages(stage), description="package")
        self.metric = w.Dropdown(options=METRICS, value=metric, description="metric")
        self.hint = w.HTML("<small>Ctrl-click picks runs one by one, Shift-click a range</small>")
        self.out = w.Output(layout=w.Layout(min_height="20em"))
        self._quiet = False
        self.stage.observe(self._on_stage, names="value")
        for picker in (self.runs, self.package, self.metric):
            picker.observe(self.redraw, names="value")

    def widget(self) -> w.Widget:
        return w.VBox([w.HBox([w.VBox([self.runs, self.hint]), w.VBox([self.stage, self.package, self.metric])]),
                       self.out])

    def _on_stage(self, change: dict) -> None:
        """A new stage: its packages, the one chosen kept if the stage has it, else its first."""
        options = self.history.packages(change["new"])
        keep = self.package.value
        self._quiet = True
        try:
            self.package.options = options
            self.package.value = keep if keep in options else (options[0] if options else None)
        finally:
            self._quiet = False
        self.redraw()

    def view(self, runs: tuple[str, ...], stage: str, package: str | None, metric: str
             ) -> tuple[str, pd.DataFrame, object | None]:
        """What the picks show: a line of text, the table of runs and the figure (None: nothing to draw)."""
        if not package:
            return f"{stage}: no package recorded in this stage yet", pd.DataFrame(), None
        df = self.history.trend(stage, package, metric, origin=None)
        df = df[df["run_id"].isin(runs)].reset_index(drop=True)
        built, cached = int((df["origin"] == "built").sum()), int((df["origin"] == "cached").sum())
        text = (f"{stage} {package}, {metric}: {built} of the {len(runs)} runs picked built it, {cached} took it "
                "from the build cache (drawn apart, not in the median)")
        unit = plots.unit_of(metric)
        return text, df.tail(20), plots.trend(df, f"{stage} {package}: {metric}", unit)

    def redraw(self, _change: dict | None = None) -> None:
        if self._quiet:
            return
        self.out.outputs = ()  # clear_output() would go through a `with` block of this thread's
        try:
            text, table, fig = self.view(tuple(self.runs.value), self.stage.value, self.package.value, self.metric.value)
        except Exception as exc:  # noqa: BLE001 - said in the output area, whole, rather than half a screen
            self.out.append_stdout(f"this view failed: {type(exc).__name__}: {exc}\n"
                                   + "".join(traceback.format_exc(limit=-3)))
            return
        self.out.append_stdout(text + "\n")
        if not table.empty:
            self.out.append_display_data(table)
        if fig is not None:
            self.out.append_display_data(Image(data=plots.png_bytes(fig)))


__all__ = ["Explorer", "METRICS", "STAGES"]
