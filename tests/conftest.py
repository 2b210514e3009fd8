import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def root_required():
    if os.geteuid() != 0:
        pytest.skip("needs root: chroot and mounts (as an ordinary user, see the unprivileged sandbox tests)")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
