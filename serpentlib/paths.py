"""The project's own places, and where per-user state lives by default."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SerpentError

PROJECT = Path(__file__).resolve().parent.parent
RECIPES = PROJECT / "recipes"
NOTEBOOKS = PROJECT / "notebooks"
PARAMS = PROJECT / "params"
DATA_HOME = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "serpentlib"
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "serpentlib"
DEFAULT_DB = DATA_HOME / "metrics.sqlite"


def db_path(db: str | Path | None = None) -> Path:
    """The metrics database: `db` (a path or a sqlite:///PATH URL), else $SERPENT_METRICS_DB, else the default."""
    text = str(db or os.environ.get("SERPENT_METRICS_DB") or DEFAULT_DB)
    if "://" in text:
        if not text.startswith("sqlite:///"):
            raise SerpentError(f"unsupported metrics database URL {text!r}", "use a path or sqlite:///PATH")
        text = text[len("sqlite://"):]
    return Path(text)


def default_work_dir(profile: str) -> Path:
    return PROJECT / "work" / profile


def default_run_dir(run_id: str) -> Path:
    return PROJECT / "runs" / run_id
