"""Metrics across runs: one embedded SQLite database holding every run's records.

`serpent run` adds each run when it ends (failed runs too); `serpent ingest RUN_DIR` adds an
older one. The database is a path or a `sqlite:///PATH` URL, from `--db`, `SERPENT_METRICS_DB`
or the default under ~/.local/share/serpentlib.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import metrics
from ..errors import SerpentError
from ..paths import db_path
from ..rows import TABLES

RUN_COLUMNS = ["run_id", "profile", "started", "finished", "duration_s", "host", "stages", "run_dir", "work_dir"]
# The store's schema version (SQLite's user_version). Stores written before it had one are
# version 1. A change to the tables raises it and adds a step to MIGRATIONS.
SCHEMA_VERSION = 7
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, profile TEXT, started TEXT, finished TEXT,
    duration_s REAL, host TEXT, stages TEXT, run_dir TEXT, work_dir TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS phases (run_id TEXT, profile TEXT, stage TEXT, package TEXT, version TEXT, phase TEXT,
    start TEXT, "end" TEXT, wall_s REAL, user_s REAL, sys_s REAL, max_rss_kb INTEGER, exit_code INTEGER, log TEXT,
    origin TEXT NOT NULL DEFAULT 'built', from_run TEXT NOT NULL DEFAULT '', worker TEXT NOT NULL DEFAULT 'local');
CREATE TABLE IF NOT EXISTS sizes (run_id TEXT, profile TEXT, stage TEXT, package TEXT, version TEXT,
    source_bytes INTEGER, build_bytes INTEGER, installed_bytes INTEGER, files INTEGER, elf_files INTEGER,
    compiler TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS checks (run_id TEXT, profile TEXT, stage TEXT, "check" TEXT, subject TEXT,
    passed INTEGER, detail TEXT, outcome TEXT, reason TEXT, cached_from TEXT);
CREATE INDEX IF NOT EXISTS phases_pkg ON phases (stage, package, run_id);
CREATE INDEX IF NOT EXISTS sizes_pkg ON sizes (stage, package, run_id);
CREATE INDEX IF NOT EXISTS checks_run ON checks (run_id);
"""


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns of `table` (`temp.NAME` for a temporary one)."""
    schema, _, name = table.rpartition(".")
    return [row[1] for row in conn.execute(f"PRAGMA {schema or 'main'}.table_info({name})")]


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _to_v2(conn: sqlite3.Connection) -> None:
    """Phases say whether the package was built or taken from the build cache, and by which run."""
    have = _columns(conn, "phases")
    if "origin" not in have:
        conn.execute("ALTER TABLE phases ADD COLUMN origin TEXT NOT NULL DEFAULT 'built'")
        conn.execute("UPDATE phases SET origin = 'cached' WHERE phase = 'cached'")
    if "from_run" not in have:
        conn.execute("ALTER TABLE phases ADD COLUMN from_run TEXT NOT NULL DEFAULT ''")


def _to_v3(conn: sqlite3.Connection) -> None:
    """Checks have an outcome (pass, fail, xfail, xpass, skip), its reason, and the run a replayed
    check comes from; older checks were pass or fail, from `passed`."""
    have = _columns(conn, "checks")
    if "outcome" not in have:
        conn.execute("ALTER TABLE checks ADD COLUMN outcome TEXT")
        conn.execute("UPDATE checks SET outcome = CASE WHEN passed THEN 'pass' ELSE 'fail' END")
    for column in ("reason", "cached_from"):
        if column not in have:
            conn.execute(f"ALTER TABLE checks ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


def _to_v4(conn: sqlite3.Connection) -> None:
    """Runs name their work directory (the build cache and the build trees a resumed build goes on
    with are there); for older runs it is read from run.json where the run directory still is."""
    if "work_dir" not in _columns(conn, "runs"):
        conn.execute("ALTER TABLE runs ADD COLUMN work_dir TEXT NOT NULL DEFAULT ''")
    for run_id, run_dir in conn.execute("SELECT run_id, run_dir FROM runs").fetchall():
        try:
            work_dir = json.loads((Path(run_dir) / "run.json").read_text()).get("work_dir", "")
        except (OSError, ValueError, TypeError):
            continue
        conn.execute("UPDATE runs SET work_dir = ? WHERE run_id = ?", (str(work_dir or ""), run_id))


def _to_v5(conn: sqlite3.Connection) -> None:
    """`passed` says the check ran and held (pass, xpass); it was True for every xfail and skip."""
    conn.execute("UPDATE checks SET passed = outcome IN ('pass', 'xpass')")


def _to_v6(conn: sqlite3.Connection) -> None:
    """Sizes name the compiler that built the package (unknown before: empty)."""
    if "compiler" not in _columns(conn, "sizes"):
        conn.execute("ALTER TABLE sizes ADD COLUMN compiler TEXT DEFAULT ''")


def _to_v7(conn: sqlite3.Connection) -> None:
    """Phases name where they ran (every one before ran on the run's own machine)."""
    if "worker" not in _columns(conn, "phases"):
        conn.execute("ALTER TABLE phases ADD COLUMN worker TEXT NOT NULL DEFAULT 'local'")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _to_v2, 3: _to_v3, 4: _to_v4, 5: _to_v5,
                                                                6: _to_v6, 7: _to_v7}  # version -> step from the one before


@dataclass(frozen=True)
class Ingested:
    run_id: str
    added: bool  # False: the very same run was in the store already, nothing changed


class History:
    """The metrics database, migrated to the current schema when opened."""

    def __init__(self, db: str | Path | None = None) -> None:
        self.path = db_path(db)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()  # SQLite connections belong to the thread that made them
        self._opened: list[sqlite3.Connection] = []
        try:
            self.version = self._migrate()
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            self.close()
            raise SerpentError(f"the metrics database {self.path} cannot be read: {exc}",
                               f"move it aside (mv {self.path} {self.path}.damaged) and run again, or give "
                               "another --db; `serpent ingest RUN_DIR...` adds the runs of their directories "
                               "to a new one") from None
        except BaseException:
            self.close()
            raise

    def _migrate(self) -> int:
        """Create a new store, or bring an older one to SCHEMA_VERSION in one transaction; its
        runs keep their ids. Returns the version the store had when opened."""
        version = self._stored_version()
        if version == SCHEMA_VERSION:  # the usual case: nothing to write, a read-only store opens too
            self._check_columns()
            return version
        self.conn.isolation_level = None  # transactions below are explicit
        self.conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
        try:
            version = self._stored_version()
            if version == 0:
                for statement in SCHEMA.split(";"):
                    self.conn.execute(statement)
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](self.conn)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._check_columns()
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            self.conn.isolation_level = ""
        return version

    def _stored_version(self) -> int:
        """The store's schema version: 0 for a new one, 1 for one written before versions."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
            version = 1
        if version > SCHEMA_VERSION:
            raise SerpentError(f"the metrics database {self.path} has schema version {version}; this serpentlib "
                               f"reads up to {SCHEMA_VERSION}",
                               "use the newer serpentlib that wrote it, or give another --db")
        return version

    def _check_columns(self) -> None:
        """Every column the records have must exist in the store, or inserts would fail later."""
        for table, wanted in (("runs", RUN_COLUMNS), *((t, metrics.columns(t)) for t in TABLES)):
            missing = [c for c in wanted if c not in _columns(self.conn, table)]
            if missing:
                raise SerpentError(f"the metrics database {self.path} (schema {SCHEMA_VERSION}) has no column "
                                   f"{', '.join(missing)} in {table}",
                                   "serpentlib's records and its store schema differ: add a migration step to "
                                   "serpentlib/records/history.py (MIGRATIONS) and raise SCHEMA_VERSION")

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the store (a widget's callback may run on another thread
        than the one that opened it: JupyterLab handles widget messages on a kernel subshell)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.path, check_same_thread=False)  # closed by close()
            self._opened.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._opened:
            conn.close()
        self._opened.clear()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, run_dir: Path, replace: bool = False) -> Ingested:
        """Add one run from its directory. The very same run again changes nothing; a run whose id
        is in the store with other records is refused, unless `replace`."""
        run_dir = Path(run_dir)
        if not (run_dir / "run.json").is_file():
            raise SerpentError(f"{run_dir} is not a run directory (no run.json)", "give a directory made by serpent run")
        info, tables = metrics.load_run_dir(run_dir)
        run_id = str(info["run_id"])
        run = {"run_id": run_id, "profile": info["profile"], "started": info["started"],
               "finished": info.get("finished", ""), "duration_s": info.get("duration_s", 0.0),
               "host": json.dumps(info.get("host", {})), "stages": json.dumps(info.get("stages", {})),
               "run_dir": str(run_dir.resolve()), "work_dir": str(info.get("work_dir", ""))}
        new = {"runs": pd.DataFrame([run]), **tables}
        with self.conn:
            for table, df in new.items():  # staged beside the store, so that both read back alike
                self.conn.execute(f"DROP TABLE IF EXISTS temp.new_{table}")
                self.conn.execute(f"CREATE TEMP TABLE new_{table} AS SELECT * FROM main.{table} WHERE 0")
                self._insert(f"temp.new_{table}", df, f"{run_dir}: {table}")
            stored = self.conn.execute("SELECT run_dir FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            differs = self._differs(run_id) if stored else ""
            if stored and not differs:
                return Ingested(run_id, False)
            if stored and not replace:
                raise SerpentError(f"run {run_id} is already in {self.path} with other records than {run_dir} "
                                   f"holds ({differs}); the store keeps the run from {stored[0]}",
                                   f"nothing was changed; if {run_dir} holds that run's records now, "
                                   f"`serpent ingest --replace {run_dir}` replaces the stored ones")
            for table, df in new.items():
                self.conn.execute(f"DELETE FROM main.{table} WHERE run_id = ?", (run_id,))
                columns = _quoted(list(df.columns))
                self.conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM temp.new_{table}")
        return Ingested(run_id, True)

    def _differs(self, run_id: str) -> str:
        """How the staged run differs from the stored one with the same id ("" when it does not)."""
        found = []
        for table in ("runs", *TABLES):
            # Names only; an older run's work_dir is blank when its run.json was gone at migration.
            columns = [c for c in _columns(self.conn, f"temp.new_{table}") if c not in ("run_dir", "work_dir")]
            select = f"SELECT {_quoted(columns)} FROM"
            order = f"ORDER BY {', '.join(str(i + 1) for i in range(len(columns)))}"
            stored = self.conn.execute(f"{select} main.{table} WHERE run_id = ? {order}", (run_id,)).fetchall()
            staged = self.conn.execute(f"{select} temp.new_{table} {order}").fetchall()
            if stored != staged:
                found.append(f"{table}: " + (f"{len(stored)} rows stored, {len(staged)} in the directory"
                                             if len(stored) != len(staged) else "other values"))
        return "; ".join(found)

    def _insert(self, table: str, df: pd.DataFrame, what: str) -> None:
        """Insert a frame's rows by column name; a column the store does not know is an error."""
        known = _columns(self.conn, table)
        unknown = [c for c in df.columns if c not in known]
        if unknown:
            raise SerpentError(f"{what} has columns the metrics database does not know: {', '.join(unknown)}",
                               "it was written by a newer serpentlib: add it to the store with that version")
        if df.empty:
            return
        rows = df.astype(object).where(df.notna(), None).itertuples(index=False, name=None)
        columns = _quoted(list(df.columns))
        self.conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(df.columns))})", rows)

    def add_frames(self, runs: pd.DataFrame, **tables: pd.DataFrame) -> None:
        """Bulk insert already-shaped frames (the benchmark's generated history uses this)."""
        with self.conn:
            self._insert("runs", runs, "runs")
            for name, df in tables.items():
                self._insert(name, df, name)

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY started", self.conn)

    def packages(self, stage: str) -> list[str]:
        """Every package the store holds records of in `stage`: timings or sizes (stage 4 has no sizes)."""
        rows = self.conn.execute("SELECT package FROM phases WHERE stage = ? UNION SELECT package FROM sizes "
                                 "WHERE stage = ?", (stage, stage)).fetchall()
        return sorted(r[0] for r in rows)

    def table(self, name: str, run_ids: list[str] | None = None, stage: str | None = None,
              package: str | None = None) -> pd.DataFrame:
        if name not in TABLES:
            raise SerpentError(f"no table {name!r}", f"use one of {', '.join(TABLES)}")
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

    def trend(self, stage: str, package: str, metric: str = "wall_s", origin: str | None = "built") -> pd.DataFrame:
        """One row per run, oldest first: run_id, started, the package's metric (`value`: wall_s
        summed over phases, or a size column), its `origin` and, when cached, `from_run`.

        By default only runs that built the package: a package taken from the build cache takes
        no build time. `origin="cached"` gives those apart; None gives both."""
        if origin not in ("built", "cached", None):
            raise SerpentError(f"unknown origin {origin!r}", "use built, cached or None for both")
        per_run = ("WITH p AS (SELECT run_id, SUM({m}) AS value, "
                   "CASE WHEN MAX(origin = 'cached') = 1 THEN 'cached' ELSE 'built' END AS origin, "
                   "MAX(CASE WHEN origin = 'cached' THEN from_run ELSE '' END) AS from_run "
                   "FROM phases WHERE stage = ? AND package = ? GROUP BY run_id) ")
        params = [stage, package]
        if metric in ("wall_s", "user_s", "sys_s"):
            sql = per_run.format(m=metric) + ("SELECT r.run_id, r.started, p.value, p.origin, p.from_run "
                                              "FROM p JOIN runs r USING (run_id) WHERE 1")
        elif metric in ("installed_bytes", "build_bytes", "source_bytes", "files", "elf_files"):
            sql = per_run.format(m="wall_s") + (
                f"SELECT r.run_id, r.started, s.{metric} AS value, COALESCE(p.origin, 'built') AS origin, "
                "COALESCE(p.from_run, '') AS from_run "
                "FROM sizes s JOIN runs r USING (run_id) LEFT JOIN p USING (run_id) "
                "WHERE s.stage = ? AND s.package = ?")
            params += [stage, package]
        else:
            raise SerpentError(f"unknown metric {metric!r}", "use wall_s, user_s, sys_s or a size column")
        if origin is not None:
            sql += " AND COALESCE(p.origin, 'built') = ?"
            params.append(origin)
        return pd.read_sql_query(sql + " ORDER BY r.started", self.conn, params=params)
