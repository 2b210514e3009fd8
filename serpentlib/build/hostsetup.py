"""Prepare the host: the few tools it needs besides Linux, Python and make. Standard library
only, since it runs before the project's environment exists (`python3 -m serpentlib.hostsetup`).

The host only makes stage 0 (the seed root) and runs sandboxes; the build tools live in the
seed. Its apt configuration is never changed: where apt exists, missing packages are installed
from the sources it already has; elsewhere the message names what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# What the host needs: a maker of the seed root, a venv for the project's Python.
HOST_PACKAGES = ["mmdebstrap", "bubblewrap", "uidmap", "python3-venv", "make"]
PATHS = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_packages(packages: list[str]) -> list[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *packages],
                          capture_output=True, text=True)
    installed = {ln.split()[0] for ln in proc.stdout.splitlines() if ln.split()[1:2] == ["ii"]}
    return [p for p in packages if p not in installed]


def without_apt() -> int:
    """Say what is missing on a host without apt; nothing is installed."""
    needs = []
    if not (shutil.which("mmdebstrap", path=PATHS) or shutil.which("debootstrap", path=PATHS)):
        needs.append("mmdebstrap (or debootstrap), which makes the seed root")
    if not shutil.which("bwrap", path=PATHS):
        needs.append("bubblewrap (bwrap), the sandbox every build step runs in")
    if needs:
        print("this host has no apt: install " + "; ".join(needs) + " with its own package manager, then run "
              "`make setup` again. Also needed: Python >= 3.11 with venv, and make", file=sys.stderr)
        return 2
    print("host ready: nothing to install (no apt here; the seed maker and bubblewrap are present)")
    return 0


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"serpentlib needs Python >= 3.11, this is {sys.version.split()[0]}: "
              "run make with PYTHON=/path/to/python3.11-or-newer", file=sys.stderr)
        return 2
    if not shutil.which("apt-get", path=PATHS):
        return without_apt()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    missing = missing_packages(HOST_PACKAGES + argv[1:])
    if missing and os.geteuid() != 0:
        print(f"serpentlib host setup installs {' '.join(missing)} with apt-get: run it as root once "
              "(sudo make setup); after that, an ordinary user needs nothing more", file=sys.stderr)
        return 2
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        print(f"installing host packages: {' '.join(missing)}")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    print("host ready: the seed maker and the venv tools are installed; apt's configuration is as it was")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
