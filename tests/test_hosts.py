"""Any host: a fresh Debian 13 root, made by debootstrap, is a real other host on this machine.
The README's first command runs inside it (stages 1 and 2), makes its own stage 0 with its own
tools, leaves its apt configuration alone, and builds stages 1 and 2 byte-identical to the
suite's own mini run on this host."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from serpentlib.records.reproduce import compare_work_dirs
from serpentlib.build.seed import mirror_from_apt
from serpentlib.build.sources import SourceStore

from .conftest import ROOT, tree_digest

pytestmark = pytest.mark.build
SUITE = "trixie"
IN_ROOT = "/root/serpentlib"          # the clone, inside the Debian 13 root
WORK, RUN = "/var/tmp/serpent-work", "/var/tmp/serpent-run"
# What a user's Debian image has before the README's command: make and python3 (the README says so).
IMAGE_PACKAGES = "make,python3,ca-certificates"
# This machine reaches the Python package index through its own certificate authorities: the
# root's pip is given the host's bundle, as it is given the host's resolver.
HOST_CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"


def clone_into(dest: Path) -> None:
    """The project's files as a fresh clone has them (tracked and new, not ignored), uncommitted edits included."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() or src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)


def in_root(root: Path, command: str, store: Path, log: Path) -> subprocess.CompletedProcess:
    """`command` as root in `root`, as another host: entered by bubblewrap's pivot_root (not chroot:
    in a chroot the kernel refuses the user namespaces every build's sandbox makes), in a mount
    namespace of its own (every mount goes with it), with the host's privileges (no user
    namespace of its own), /proc, /dev, /sys, the network, the host's resolver, and the host's
    source store (content-addressed, every file verified on use) at the root's store."""
    shared = root / "root/.cache/serpentlib/sources"
    shared.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("/etc/resolv.conf").resolve(), root / "etc/resolv.conf")
    shutil.copy(Path(HOST_CA).resolve(), root / "etc/ssl/host-ca.crt")
    # /proc as the host has it, fully visible: a proc mount bwrap made would refuse the nested sandboxes theirs.
    argv = ["bwrap", "--bind", str(root), "/", "--dev-bind", "/proc", "/proc", "--dev-bind", "/dev", "/dev",
            "--bind", "/sys", "/sys", "--bind", str(store), "/root/.cache/serpentlib/sources", "--tmpfs", "/tmp",
            "--die-with-parent",
            "--", "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root", "LANG=C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_CERT=/etc/ssl/host-ca.crt",
            "/bin/sh", "-c", command]
    with open(log, "a") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def debian13(mini_run):
    """A fresh Debian 13 root that ran `make bootstrap STAGE=1,2`: (root, log, apt digests before/after)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, chroot and mounts")
    if not shutil.which("debootstrap"):
        pytest.fail("debootstrap is missing: `make test` installs it (TEST_PACKAGES in the Makefile)")
    mirror = os.environ.get("SERPENT_DEBIAN_MIRROR") or mirror_from_apt()
    if not mirror:
        pytest.fail("no Debian mirror in this host's apt sources: set SERPENT_DEBIAN_MIRROR")
    base = Path(tempfile.mkdtemp(prefix="serpent-debian13-", dir="/var/tmp"))
    root, log = base / "root", base / "debian13.log"
    made = subprocess.run(["debootstrap", "--variant=minbase", f"--include={IMAGE_PACKAGES}", SUITE, str(root), mirror],
                          stdout=open(log, "w"), stderr=subprocess.STDOUT)
    assert made.returncode == 0, log.read_text()[-2000:]
    clone_into(root / IN_ROOT.lstrip("/"))
    before = tree_digest(root / "etc/apt")
    proc = in_root(root, f"cd {IN_ROOT} && make bootstrap STAGE=1,2 WORK_DIR={WORK} RUN_DIR={RUN}",
                   SourceStore().root, log)
    after = tree_digest(root / "etc/apt")
    yield root, log, proc, before, after
    shutil.rmtree(base, ignore_errors=True)


def test_the_readme_command_runs_on_debian_13(debian13):
    root, log, proc, _, _ = debian13
    assert (root / "etc/debian_version").read_text().startswith("13"), "debootstrap made another release"
    assert proc.returncode == 0, log.read_text(errors="replace")[-4000:]
    assert (root / RUN.lstrip("/") / "stage2-runtime.ipynb").is_file()


def test_debian_13_apt_configuration_is_left_alone(debian13):
    _, _, _, before, after = debian13
    assert before == after


def test_stages_1_and_2_from_debian_13_are_byte_identical_to_this_hosts(debian13, mini_run):
    root, log, proc, _, _ = debian13
    assert proc.returncode == 0, log.read_text(errors="replace")[-2000:]
    import json

    ours = json.loads((mini_run[1] / "run.json").read_text())["seed"]
    theirs = json.loads((root / RUN.lstrip("/") / "run.json").read_text())["seed"]
    assert theirs["packages_digest"] == ours["packages_digest"], \
        f"the two seeds hold different package versions (Debian updated {ours['suite']} in between): {ours} {theirs}"
    diffs = compare_work_dirs(mini_run[2], root / WORK.lstrip("/"), ["stage1", "stage2"])
    for d in diffs:
        assert d.files > 100 and d.identical == d.files, f"{d.stage}: {d.differing.head(20).to_string()}"
