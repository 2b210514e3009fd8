import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def own_metrics_db(tmp_path_factory, monkeypatch):
    """Tests (and the runs they start) record into a database of their own, not the user's, and
    sign with keys of their own."""
    monkeypatch.setenv("SERPENT_METRICS_DB", str(tmp_path_factory.getbasetemp() / "metrics.sqlite"))
    monkeypatch.setenv("SERPENT_KEYS", str(tmp_path_factory.getbasetemp() / "keys"))


@pytest.fixture
def root_required():
    if os.geteuid() != 0:
        pytest.skip("needs root: chroot and mounts (as an ordinary user, see the unprivileged sandbox tests)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def serpent(*args, db, keys=None):
    keys = keys or os.environ.get("SERPENT_KEYS") or Path(db).parent / "keys"
    env = {**os.environ, "SERPENT_METRICS_DB": str(db), "SERPENT_KEYS": str(keys)}
    return subprocess.run([sys.executable, "-m", "serpentlib.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env)


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory):
    """The whole mini profile, run once per session: (process, run dir, work dir)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox's namespaces and chroots")
    base = tmp_path_factory.mktemp("mini")
    run_dir, work_dir = base / "run", base / "work"
    proc = serpent("run", "--profile", "mini", "--run-dir", str(run_dir), "--work-dir", str(work_dir), "-q",
                   db=base / "metrics.sqlite", keys=tmp_path_factory.getbasetemp() / "keys")  # the tests' own store
    return proc, run_dir, work_dir
