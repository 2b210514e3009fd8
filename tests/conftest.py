import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
