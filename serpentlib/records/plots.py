"""Matplotlib figures from the record dataframes. Each returns a Figure of its own, made without
pyplot's global state (so a widget's callback on another thread draws whole figures); none shows
it: a notebook displays it, a report embeds it (`png`)."""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .metrics import outcome_counts, outcome_matrix

# One colour per phase any stage records (stage 4's too), so no two phases share a bar's colour.
PHASE_COLORS = {"fetch": "#9e9e9e", "extract": "#bcaaa4", "patch": "#ffcc80", "prepare": "#ffe082", "configure": "#90caf9",
                "resume": "#80deea", "build": "#1e88e5", "check": "#8e24aa", "install": "#43a047", "measure": "#c5e1a5",
                "merge": "#a5d6a7", "pack": "#dce775", "cached": "#b0bec5", "manifest": "#ffb74d", "archive": "#6d4c41", "sbom": "#00897b",
                "image": "#f06292", "boot": "#e53935"}


class Plot(Figure):
    """A figure that shows itself as a PNG wherever it is displayed (a notebook, a dashboard, a
    report), whatever matplotlib backend the kernel runs."""

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict, dict]:
        """The PNG, with its description as the image's alternative text (the report's `alt`).
        A bundle, not `_repr_png_`: once pyplot is imported in a kernel (pandas does it), the inline
        backend's printer for every Figure takes precedence over `_repr_png_`, without the alt."""
        said = describe(self)
        return {"image/png": png(self), "text/plain": f"<plot: {said}>"}, {"image/png": {"alt": said}}


def describe(fig: Figure) -> str:
    """A figure in words, for a reader who cannot see it: each axis's title, what its axes measure
    and the labels of its bars or lines."""
    parts = []
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        legend = ax.get_legend()
        keys = [t.get_text() for t in legend.get_texts()] if legend else []
        words = [ax.get_title() or "a plot", f"x: {ax.get_xlabel()}" if ax.get_xlabel() else "",
                 f"y: {ax.get_ylabel()}" if ax.get_ylabel() else "",
                 f"rows: {', '.join(labels[::-1])}" if labels else "", f"key: {', '.join(keys)}" if keys else ""]
        parts.append("; ".join(w for w in words if w))
    return ". ".join(parts)[:600]


def _figure(figsize: tuple[float, float]):
    """A figure and its one axis, owned by the caller alone (not registered with pyplot)."""
    fig = Plot(figsize=figsize)
    return fig, fig.subplots()


def _empty(title: str) -> Figure:
    fig, ax = _figure((8, 2))
    ax.text(0.5, 0.5, "no records", ha="center", va="center")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def time_per_package(phases: pd.DataFrame, title: str = "Wall time per package") -> Figure:
    """Horizontal bars, one per package in build order, stacked by phase."""
    if phases.empty:
        return _empty(title)
    order = list(dict.fromkeys(phases["package"]))
    table = phases.pivot_table(index="package", columns="phase", values="wall_s", aggfunc="sum", fill_value=0)
    table = table.reindex(order[::-1])
    cols = [p for p in PHASE_COLORS if p in table.columns] + [c for c in table.columns if c not in PHASE_COLORS]
    fig, ax = _figure((9, 0.5 * len(order) + 1.5))
    table[cols].plot.barh(stacked=True, ax=ax, color=[PHASE_COLORS.get(c, "#777") for c in cols], width=0.7)
    for i, total in enumerate(table.sum(axis=1)):
        ax.text(total, i, f" {total:.1f} s", va="center", fontsize=9)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(title="phase", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.margins(x=0.15)
    fig.tight_layout()
    return fig


def installed_size(sizes: pd.DataFrame, title: str = "Installed size per package") -> Figure:
    if sizes.empty:
        return _empty(title)
    df = sizes.iloc[::-1]
    mib = df["installed_bytes"] / 2**20
    fig, ax = _figure((9, 0.5 * len(df) + 1.5))
    ax.barh(df["package"], mib, color="#5e35b1")
    for i, (v, n) in enumerate(zip(mib, df["files"])):
        ax.text(v, i, f" {v:.1f} MiB, {n} files", va="center", fontsize=9)
    ax.set_xlabel("installed size (MiB)")
    ax.set_title(title)
    ax.margins(x=0.3)
    fig.tight_layout()
    return fig


def timeline(phases: pd.DataFrame, title: str = "Build timeline") -> Figure:
    """A bootchart: one bar per package phase on a shared time axis. Where builds ran on a
    cluster's workers, the packages are in lanes, one per worker (this machine's: `local`), each
    labelled with where its build ran."""
    if phases.empty:
        return _empty(title)
    df = phases.copy()
    df["start"] = pd.to_datetime(df["start"], format="ISO8601")
    t0 = df["start"].min()
    df["t"] = (df["start"] - t0).dt.total_seconds()
    order = list(dict.fromkeys(df["package"]))
    labels = order
    workers = df["worker"].fillna("local").astype(str) if "worker" in df else pd.Series("local", index=df.index)
    if set(workers) != {"local"}:  # a package's lane: where its build ran (its merge runs here)
        remote = df.assign(worker=workers)[workers != "local"]
        lane = {p: remote[remote["package"] == p]["worker"].iloc[0] if p in set(remote["package"]) else "local"
                for p in order}
        lanes = sorted(set(lane.values()), key=lambda w: (w == "local", w))
        order = sorted(order, key=lambda p: (lanes.index(lane[p]), order.index(p)))
        labels = [f"{'worker ' + lane[p] if lane[p] != 'local' else 'local'} · {p}" for p in order]
    fig, ax = _figure((10, 0.45 * len(order) + 1.5))
    for _, row in df.iterrows():
        y = len(order) - 1 - order.index(row["package"])
        ax.barh(y, max(row["wall_s"], 0.05), left=row["t"], color=PHASE_COLORS.get(row["phase"], "#777"),
                edgecolor="black" if row["exit_code"] else "none", height=0.6)
    if labels is not order:  # a line between lanes
        for i in range(1, len(order)):
            if labels[i].split(" · ")[0] != labels[i - 1].split(" · ")[0]:
                ax.axhline(len(order) - i - 0.5, color="#555", linewidth=0.8)
    ax.set_yticks(range(len(order)), labels[::-1])
    ax.set_xlabel("seconds since stage start")
    ax.set_title(title)
    handles = [Rectangle((0, 0), 1, 1, color=c) for p, c in PHASE_COLORS.items() if p in set(df["phase"])]
    ax.legend(handles, [p for p in PHASE_COLORS if p in set(df["phase"])], title="phase", fontsize=8,
              loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


RUN_COLORS = ["#1e88e5", "#fb8c00", "#43a047", "#8e24aa", "#e53935", "#00897b", "#6d4c41", "#f06292", "#546e7a",
              "#c0ca33"]


def work_by_run(builds: pd.DataFrame, title: str = "The build work behind the result") -> Figure:
    """Per package, the wall time of its real builds (builds.csv), one segment per run that did
    part of it: a build resumed over three runs is three segments."""
    if builds.empty:
        return _empty(title)
    df = builds.assign(hours=builds["wall_s"].astype(float) / 3600, run_id=builds["run_id"].astype(str))
    runs = list(dict.fromkeys(df["run_id"]))
    table = df.pivot_table(index="package", columns="run_id", values="hours", aggfunc="sum", fill_value=0.0, sort=False)
    table = table.reindex(columns=runs)
    fig, ax = _figure((10, 0.4 * len(table) + 1.8))
    left = pd.Series(0.0, index=table.index)
    for i, run in enumerate(runs):
        ax.barh(range(len(table))[::-1], table[run], left=left, color=RUN_COLORS[i % len(RUN_COLORS)], label=run, height=0.6)
        left += table[run]
    ax.set_yticks(range(len(table))[::-1], list(table.index))
    ax.set_xlabel("wall time of the real builds (hours)")
    ax.set_title(title)
    ax.legend(title="run", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


UNITS = {"bytes": (2**20, "MiB"), "s": (1, "s"), "files": (1, "files")}


def unit_of(metric: str) -> str:
    """The unit a metric is shown in: seconds, MiB for sizes, or a count."""
    return "s" if metric.endswith("_s") else "bytes" if metric.endswith("_bytes") else "files"


def _when(rows: pd.DataFrame) -> pd.Series:
    """Each run's start (UTC), the x of every trend: the same run is at the same x for every package."""
    return pd.to_datetime(rows["started"], utc=True, format="ISO8601")


def trend(history_rows: pd.DataFrame, title: str, unit: str = "s") -> Figure:
    """A metric of one package across runs, by the time each run started (from `History.trend`).
    Runs that took the package from the build cache (`origin` cached) are drawn apart and left out
    of the median. `unit`: s, bytes (shown in MiB) or files."""
    if history_rows.empty:
        return _empty(title)
    scale, shown = UNITS.get(unit, (1, unit))
    rows = history_rows.reset_index(drop=True)
    when, value = _when(rows), rows["value"] / scale
    cached = rows["origin"].eq("cached") if "origin" in rows else pd.Series(False, index=rows.index)
    fig, ax = _figure((9, 3.4))
    marker = "o" if len(rows) < 60 else None
    ax.plot(when[~cached], value[~cached], marker=marker, lw=1.2, color="#1e88e5",
            label=f"built ({_runs(int((~cached).sum()))})")
    if cached.any():
        ax.scatter(when[cached], value[cached], marker="x", color="#78909c", zorder=3,
                   label=f"from the build cache ({_runs(int(cached.sum()))}; no build time)")
    if (~cached).any():
        median = value[~cached].median()
        ax.axhline(median, color="#999", lw=0.8, ls="--", label=f"median of built: {median:,.1f} {shown}")
    ax.set_xlabel("run started (UTC)")
    ax.set_ylabel(shown)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def trends(frames: dict[str, pd.DataFrame], title: str, unit: str = "s") -> Figure:
    """Several packages' trends on one axis, each run at its start time, for the static report of
    explore.ipynb."""
    frames = {k: v for k, v in frames.items() if not v.empty}
    if not frames:
        return _empty(title)
    scale, shown = UNITS.get(unit, (1, unit))
    fig, ax = _figure((10, 4))
    for name, df in frames.items():
        ax.plot(_when(df), df["value"] / scale, marker="o" if len(df) < 30 else None, lw=1.2, label=name)
    ax.set_xlabel("run started (UTC)")
    ax.set_ylabel(shown)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


OUTCOME_COLORS = {"fail": "background-color:#ffcdd2;font-weight:bold", "xpass": "background-color:#ffcdd2;font-weight:bold",
                  "xfail": "background-color:#fff8e1", "skip": "background-color:#eceff1"}


def check_table(checks: pd.DataFrame):
    """Checks per kind: how many had each outcome (pass, fail, xfail, xpass, skip); failures (fail,
    xpass) in red, expected failures in amber, skips in grey, where any."""
    if checks.empty:
        return pd.DataFrame({"checks": ["none recorded"]}).style
    table = outcome_counts(checks, ["stage", "check"])
    style = table.style.hide(axis="index")
    for outcome, color in OUTCOME_COLORS.items():
        style = style.map(lambda v, color=color: color if v else "", subset=[outcome])
    return style


def lit_table(checks: pd.DataFrame) -> pd.DataFrame:
    """LLVM's lit suites: per suite, how many tests had each outcome (a lit record's subject is
    `suite: test`)."""
    lit = checks[checks["check"] == "lit"]
    if lit.empty:
        return pd.DataFrame({"lit": ["no lit suite ran"]})
    return outcome_counts(lit.assign(suite=lit["subject"].str.split(": ", n=1).str[0]), ["suite"])


def check_list(checks: pd.DataFrame, hide: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The checks worth reading one by one: every one that did not simply pass, and those of the
    kinds not in `hide`; with outcome, reason and detail (and the run replayed, when cached)."""
    rows = checks[(checks["outcome"] != "pass") | ~checks["check"].isin(hide)]
    # lit's UNSUPPORTED tests (hundreds: targets not built) are counted in lit_table, not listed
    rows = rows[~((rows["check"] == "lit") & (rows["outcome"] == "skip"))]
    columns = ["check", "subject", "outcome", "reason", "detail"]
    if (checks["cached_from"] != "").any():
        columns.append("cached_from")
    return rows[columns].reset_index(drop=True)


def flag_table(checks: pd.DataFrame):
    """Stage 4's tuning flags: packages by flags, each cell the outcome, coloured as in check_table."""
    table = outcome_matrix(checks, "flag:")
    if table.empty:
        return pd.DataFrame({"flags": ["no tuning flags in this profile"]}).style
    return table.style.map(lambda v: OUTCOME_COLORS.get(v, ""))


def flag_reasons(checks: pd.DataFrame) -> pd.DataFrame:
    """Why a flag did not simply pass: one row per flag, outcome and reason, with the packages."""
    flags = checks[checks["check"].str.startswith("flag:") & (checks["outcome"] != "pass")]
    rows = flags.groupby(["check", "outcome", "reason"], sort=False)["subject"].agg(", ".join).reset_index()
    rows["check"] = rows["check"].str.removeprefix("flag:")
    return rows.rename(columns={"check": "flag", "subject": "packages"})


def package_sizes(packages: pd.DataFrame, title: str = "Package sizes") -> Figure:
    """Installed and package-file size per package (stage 4's packages.csv)."""
    if packages.empty:
        return _empty(title)
    df = packages.iloc[::-1]
    fig, ax = _figure((9, 0.5 * len(df) + 1.5))
    y = range(len(df))
    ax.barh([i + 0.2 for i in y], df["installed_bytes"] / 2**20, height=0.4, color="#5e35b1", label="installed")
    ax.barh([i - 0.2 for i in y], df["package_bytes"] / 2**20, height=0.4, color="#ffb300", label="package file (xz)")
    ax.set_yticks(list(y), df["package"])
    for i, (a, b) in enumerate(zip(df["installed_bytes"], df["package_bytes"])):
        ax.text(a / 2**20, i + 0.2, f" {a / 2**20:.2f} MiB", va="center", fontsize=8)
        ax.text(b / 2**20, i - 0.2, f" {b / 2**20:.2f} MiB", va="center", fontsize=8)
    ax.set_xlabel("MiB")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.margins(x=0.25)
    fig.tight_layout()
    return fig


def dependency_counts(packages: pd.DataFrame, title: str = "Run-time dependencies") -> Figure:
    if packages.empty:
        return _empty(title)
    df = packages.iloc[::-1]
    fig, ax = _figure((9, 0.4 * len(df) + 1.5))
    ax.barh(df["package"], df["dependency_count"], color="#00897b")
    for i, (n, deps) in enumerate(zip(df["dependency_count"], df["depends"])):
        ax.text(n, i, f" {deps}", va="center", fontsize=8)
    ax.set_xlabel("run-time dependencies")
    ax.set_title(title)
    ax.margins(x=0.4)
    fig.tight_layout()
    return fig


def boot_events(events: pd.DataFrame, title: str = "The boot") -> Figure:
    """The boot's milestones on the kernel's clock, and QEMU's whole wall time."""
    if events.empty:
        return _empty(title)
    df = events.iloc[::-1]
    fig, ax = _figure((9, 0.45 * len(df) + 1.5))
    wall = df["event"].str.startswith("QEMU")
    ax.barh(df["event"], df["kernel_s"], color=["#90a4ae" if w else "#3949ab" for w in wall])
    for i, v in enumerate(df["kernel_s"]):
        ax.text(v, i, f" {v:.2f} s", va="center", fontsize=9)
    ax.set_xlabel(f"seconds since the kernel started (grey: QEMU's wall time; {df['accel'].iloc[0]})")
    ax.set_title(title)
    ax.margins(x=0.2)
    fig.tight_layout()
    return fig


def boot_units(units: pd.DataFrame, title: str = "systemd: each unit's start", top: int = 20) -> Figure:
    """`systemd-analyze blame`: the units that took longest to start, longest at the top."""
    if units.empty:
        return _empty(title)
    df = units.sort_values("seconds", ascending=False).head(top).iloc[::-1]
    fig, ax = _figure((9, 0.35 * len(df) + 1.5))
    ax.barh(df["unit"], df["seconds"], color="#5e35b1")
    for i, v in enumerate(df["seconds"]):
        ax.text(v, i, f" {v:.2f} s", va="center", fontsize=8)
    shown = f"the {len(df)} slowest of {len(units)}" if len(units) > len(df) else f"all {len(units)}"
    ax.set_xlabel(f"seconds to start ({shown} units; {df['accel'].iloc[0]})")
    ax.set_title(title)
    ax.margins(x=0.2)
    fig.tight_layout()
    return fig


def policy_table(checks: pd.DataFrame):
    """Packages by policies: ok, excused (an exception applied), skipped or FAIL, coloured."""
    outcomes = outcome_matrix(checks, "policy:")
    if outcomes.empty:
        return pd.DataFrame({"policies": ["none recorded"]}).style
    words = {"": "", "xfail": "excused", "pass": "ok", "skip": "skipped"}
    table = outcomes.map(lambda o: words.get(o, "FAIL"))
    colors = {"ok": "background-color:#e8f5e9", "excused": "background-color:#fff8e1",
              "FAIL": "background-color:#ffcdd2;font-weight:bold"}
    return table.style.map(lambda v: colors.get(v, ""))


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def png(fig: Figure) -> str:
    """The figure as a base64 PNG for an <img> tag."""
    return base64.b64encode(png_bytes(fig)).decode()
