"""Metrics across runs: one embedded SQLite database holding every run's records.

`serpent run` adds each run when it ends (failed runs too); `serpent ingest RUN_DIR` adds an
older one. The database is a path or a `sqlite:///PATH` URL, from `--db`, `SERPENT_METRICS_DB`
or the default under ~/.local/share/serpentlib.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pandas as pd

from . import metrics
from .errors import SerpentError

DEFAULT_DB = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "serpentlib" / "metrics.sqlite"
RUN_COLUMNS = ["run_id", "profile", "started", "finished", "duration_s", "host", "stages", "run_dir"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, profile TEXT, started TEXT, finished TEXT,
    duration_s REAL, host TEXT, stages TEXT, run_dir TEXT);
CREATE TABLE IF NOT EXISTS phases (run_id TEXT, profile TEXT, stage TEXT, package TEXT, version TEXT, phase TEXT,
    start TEXT, "end" TEXT, wall_s REAL, user_s REAL, sys_s REAL, max_rss_kb INTEGER, exit_code INTEGER, log TEXT);
CREATE TABLE IF NOT EXISTS sizes (run_id TEXT, profile TEXT, stage TEXT, package TEXT, version TEXT,
    source_bytes INTEGER, build_bytes INTEGER, installed_bytes INTEGER, files INTEGER, elf_files INTEGER);
CREATE TABLE IF NOT EXISTS checks (run_id TEXT, profile TEXT, stage TEXT, "check" TEXT, subject TEXT,
    passed INTEGER, detail TEXT, outcome TEXT, reason TEXT, cached_from TEXT);
CREATE INDEX IF NOT EXISTS phases_pkg ON phases (stage, package, run_id);
CREATE INDEX IF NOT EXISTS sizes_pkg ON sizes (stage, package, run_id);
CREATE INDEX IF NOT EXISTS checks_run ON checks (run_id);
"""


def db_path(db: str | Path | None = None) -> Path:
    text = str(db or os.environ.get("SERPENT_METRICS_DB") or DEFAULT_DB)
    if "://" in text:
        if not text.startswith("sqlite:///"):
            raise SerpentError(f"unsupported metrics database URL {text!r}", "use a path or sqlite:///PATH")
        text = text[len("sqlite://"):]
    return Path(text)


class History:
    """The metrics database."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.path = db_path(db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path)
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, run_dir: Path) -> str:
        """Add (or replace) one run from its directory; return its run_id."""
        run_dir = Path(run_dir)
        info_file = run_dir / "run.json"
        if not info_file.exists():
            raise SerpentError(f"{run_dir} is not a run directory (no run.json)", "give a directory made by serpent run")
        info = json.loads(info_file.read_text())
        run_id = info["run_id"]
        with self.conn:
            for table in ("runs", *metrics.TABLES):
                self.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            self.conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (run_id, info["profile"], info["started"], info.get("finished", ""),
                               info.get("duration_s", 0.0), json.dumps(info.get("host", {})),
                               json.dumps(info.get("stages", {})), str(run_dir.resolve())))
            for table in metrics.TABLES:
                df = metrics.load(run_dir, table)
                if not df.empty:
                    df = df.assign(run_id=run_id)
                    df.to_sql(table, self.conn, if_exists="append", index=False)
        return run_id

    def add_frames(self, runs: pd.DataFrame, **tables: pd.DataFrame) -> None:
        """Bulk insert already-shaped frames (the benchmark's generated history uses this)."""
        with self.conn:
            runs.to_sql("runs", self.conn, if_exists="append", index=False)
            for name, df in tables.items():
                df.to_sql(name, self.conn, if_exists="append", index=False)

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY started", self.conn)

    def table(self, name: str, run_ids: list[str] | None = None, stage: str | None = None,
              package: str | None = None) -> pd.DataFrame:
        if name not in metrics.TABLES:
            raise SerpentError(f"no table {name!r}", f"use one of {', '.join(metrics.TABLES)}")
        where, args = [], []
        if run_ids is not None:
            where.append(f"run_id IN ({','.join('?' * len(run_ids))})")
            args += run_ids
        for column, value in (("stage", stage), ("package", package)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT * FROM {name}" + (f" WHERE {' AND '.join(where)}" if where else "")
        df = pd.read_sql_query(sql, self.conn, params=args)
        if name == "checks":
            df = metrics.normalise_checks(df)
        return df

    def trend(self, stage: str, package: str, metric: str = "wall_s") -> pd.DataFrame:
        """One row per run, oldest first: the package's metric (wall_s summed over phases, or a size column)."""
        if metric in ("wall_s", "user_s", "sys_s"):
            sql = (f"SELECT r.run_id, r.started, SUM(p.{metric}) AS value FROM phases p JOIN runs r USING (run_id) "
                   "WHERE p.stage = ? AND p.package = ? GROUP BY r.run_id ORDER BY r.started")
        elif metric in ("installed_bytes", "build_bytes", "source_bytes", "files", "elf_files"):
            sql = (f"SELECT r.run_id, r.started, s.{metric} AS value FROM sizes s JOIN runs r USING (run_id) "
                   "WHERE s.stage = ? AND s.package = ? ORDER BY r.started")
        else:
            raise SerpentError(f"unknown metric {metric!r}", "use wall_s, user_s, sys_s or a size column")
        return pd.read_sql_query(sql, self.conn, params=(stage, package))
