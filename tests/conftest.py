import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serpentlib.build.phases import SizeRecord
from serpentlib.records.metrics import Recorder
from serpentlib.rows import CheckRecord
from serpentlib.records.run import RunInfo
from serpentlib.build.sandbox import PhaseRecord

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test that needs the bootstrap (the mini_run fixture, however indirectly) is a build test,
    so `-m "not build"` (make test-fast) never starts one."""
    for item in items:
        if "mini_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.build)


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


def tree_digest(top: Path) -> str:
    """sha256 over every path, mode, link target and file content under `top`."""
    h = hashlib.sha256()
    for dirpath, dirs, names in sorted(os.walk(top)):
        dirs.sort()
        for name in sorted(dirs + names):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(top)}\0{st.st_mode}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


APT_BEFORE_AND_AFTER: dict[str, str] = {}


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory):
    """The whole mini profile, run once per session by the README's first command (`make
    bootstrap`), /etc/apt hashed before and after: (process, run dir, work dir)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandbox's namespaces and chroots")
    base = tmp_path_factory.mktemp("mini")
    run_dir, work_dir = base / "run", base / "work"
    APT_BEFORE_AND_AFTER["before"] = tree_digest(Path("/etc/apt"))
    proc = subprocess.run(["make", "-C", str(ROOT), "bootstrap", f"WORK_DIR={work_dir}", f"RUN_DIR={run_dir}"],
                          capture_output=True, text=True, env={**os.environ, "SERPENT_METRICS_DB": str(base / "metrics.sqlite"),
                               "SERPENT_KEYS": str(tmp_path_factory.getbasetemp() / "keys")})  # the tests' own key store
    APT_BEFORE_AND_AFTER["after"] = tree_digest(Path("/etc/apt"))
    return proc, run_dir, work_dir


PACKAGES = {"musl": 30.0, "dash": 6.0, "bash": 38.0, "make": 16.0}


def make_run(base, run_id, times=PACKAGES, failing_check=None, failed_phase=None, stage="stage2", folder=None,
             cached_from=None, interrupted_phase=None):
    """A run directory as `serpent run` leaves it: run.json and the Recorder's CSV files and logs.
    `folder` (default: the run id) is where under `base`; with `cached_from`, every package is
    taken from the build cache that run filled."""
    run_dir = base / (folder or run_id)
    rec = Recorder(run_dir, run_id, "mini")
    phases = [("cached", 0.0)] if cached_from else [("configure", 0.3), ("build", 0.6), ("install", 0.1)]
    origin = {"origin": "cached", "from_run": cached_from} if cached_from else {}
    for pkg, wall in times.items():
        for phase, share in phases:
            log = run_dir / "logs" / stage / pkg / f"{phase}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            code = 2 if failed_phase == (pkg, phase) else 130 if interrupted_phase == (pkg, phase) else 0
            log.write_text(f"# {phase}\n" + ("error: something broke\n" if code else "ok\n"))
            rec.add(PhaseRecord(stage, pkg, "1.0", phase, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:10+00:00",
                                round(wall * share, 3) or 0.05, wall * share * 0.9, 0.1, 50000, code, str(log),
                                **origin))
        rec.add(SizeRecord(stage, pkg, "1.0", 10**6, 5 * 10**6, 2 * 10**6, 100, 3))
        rec.add(CheckRecord(stage, "runs-in-root", f"{pkg}: --version", pkg != failing_check, "exit 0"))
    info = RunInfo(run_id=run_id, profile="mini", run_dir=str(run_dir), work_dir="/w", host={"hostname": "h", "cpus": 2},
                   started=f"2026-01-01T00:{len(list(base.iterdir())):02d}:00+00:00",
                   stages={"2": "failed" if failed_phase else "interrupted" if interrupted_phase else "passed"},
                   duration_s=sum(times.values()),
                   failure="stage 2 failed: bash in build (exit 2)" if failed_phase else "")
    info.save()
    return run_dir


def explore(db, stage, out):
    """explore.ipynb executed headless against `db`: the code cells' outputs."""
    proc = subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "explore.ipynb"), str(out),
                           "-p", "db", str(db), "-p", "stage", stage, "-k", "serpentlib", "--no-progress-bar"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    nb = json.loads(Path(out).read_text())
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
