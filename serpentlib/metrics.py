"""Records -> CSV files in the run directory -> pandas dataframes.

Records are appended as they happen, so a run that fails or is killed keeps every record
made before it stopped.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .build import SizeRecord
from .sandbox import PhaseRecord


@dataclass
class CheckRecord:
    """One verification result."""

    stage: str
    check: str
    subject: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


TABLES: dict[str, type] = {"phases": PhaseRecord, "sizes": SizeRecord, "checks": CheckRecord}


class Recorder:
    """Appends records to `<run_dir>/<table>.csv`, each row tagged with run_id and profile."""

    def __init__(self, run_dir: Path, run_id: str = "", profile: str = "") -> None:
        self.run_dir = Path(run_dir)
        self.run_id, self.profile = run_id, profile
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def path(self, table: str) -> Path:
        return self.run_dir / f"{table}.csv"

    def add(self, record: Any) -> None:
        table = next(name for name, cls in TABLES.items() if isinstance(record, cls))
        row = {"run_id": self.run_id, "profile": self.profile, **asdict(record)}
        path = self.path(table)
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def add_all(self, records: list[Any]) -> None:
        for record in records:
            self.add(record)


def columns(table: str) -> list[str]:
    return ["run_id", "profile"] + [f.name for f in fields(TABLES[table])]


def load(run_dir: Path, table: str, stage: str | None = None) -> pd.DataFrame:
    """One table of a run as a dataframe (empty, with the right columns, if nothing was recorded)."""
    path = Path(run_dir) / f"{table}.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns(table))
    df = pd.read_csv(path)
    if table == "checks":
        df["passed"] = df["passed"].astype(str).str.lower().eq("true")
    return df if stage is None else df[df["stage"] == stage].reset_index(drop=True)


def package_times(phases: pd.DataFrame) -> pd.DataFrame:
    """Wall seconds per package (rows, in build order) and phase (columns), plus a total and share."""
    if phases.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(phases["package"]))
    table = phases.pivot_table(index="package", columns="phase", values="wall_s", aggfunc="sum", fill_value=0.0)
    table = table.reindex(order)
    table["total"] = table.sum(axis=1)
    table["share_%"] = (100 * table["total"] / table["total"].sum()).round(1)
    return table.round(2)
