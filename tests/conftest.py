import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def own_metrics_db(tmp_path_factory, monkeypatch):
    """Tests (and the runs they start) record into a database of their own, not the user's."""
    monkeypatch.setenv("SERPENT_METRICS_DB", str(tmp_path_factory.getbasetemp() / "metrics.sqlite"))


@pytest.fixture
def root_required():
    if os.geteuid() != 0:
        pytest.skip("needs root: chroot and mounts (as an ordinary user, see the unprivileged sandbox tests)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
