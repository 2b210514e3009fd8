"""Stage 3's replaces-serpent check on real trees: only a real program or library counts."""

import os

import pytest

from serpentlib.stages.verify import check_replaced


@pytest.fixture
def roots(tmp_path):
    old, new = tmp_path / "serpent", tmp_path / "root"
    for root in (old, new):
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/lib").mkdir(parents=True)
    for name in ("file", "relative", "absolute", "dangling", "dangling-absolute", "loop", "climbs-to-host",
                 "to-a-directory-link"):
        (old / "usr/bin" / name).write_text("#!/bin/sh\n")
    (new / "usr/bin/file").write_text("#!/bin/sh\n")
    os.symlink("file", new / "usr/bin/relative")
    os.symlink("/usr/bin/file", new / "usr/bin/absolute")
    os.symlink("nothere", new / "usr/bin/dangling")
    os.symlink("/usr/bin/nothere", new / "usr/bin/dangling-absolute")
    os.symlink("loop", new / "usr/bin/loop")
    # In the chroot `..` stops at /: this is /bin/sh of the root, which it lacks (the host has one).
    os.symlink("../../../../../../../../bin/sh", new / "usr/bin/climbs-to-host")
    os.symlink("../lib/gone", new / "usr/bin/to-a-directory-link")
    return old, new


def test_only_real_files_count_as_replacements(roots):
    old, new = roots
    assert os.path.exists("/bin/sh"), "the host's /bin/sh makes the climbing link resolve on the host"
    got = {r.subject: r.passed for r in check_replaced("stage3", old, new, dirs=("usr/bin",))}
    assert got == {"/usr/bin/file": True, "/usr/bin/relative": True, "/usr/bin/absolute": True,
                   "/usr/bin/dangling": False, "/usr/bin/dangling-absolute": False, "/usr/bin/loop": False,
                   "/usr/bin/climbs-to-host": False, "/usr/bin/to-a-directory-link": False}
