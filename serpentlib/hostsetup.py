"""Prepare a Debian/Ubuntu host: deb-src entries and the host tools. Standard library only,
since it runs before the project's environment exists (`python3 -m serpentlib.hostsetup`).

deb-src entries are derived from the machine's own apt sources, never written by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

HOST_PACKAGES = [
    # the seed compiler and its tools
    "clang", "lld", "llvm", "libclang-rt-14-dev",
    # build tools used by recipes
    "make", "cmake", "ninja-build", "python3", "python3-venv", "rsync", "bc", "patch", "file",
    "xz-utils", "bzip2", "gzip",
    # make-dfsg ships no configure script: autoreconf runs on the host
    "autoconf", "automake", "autopoint", "gettext", "pkg-config",
    # sandbox and sources
    "util-linux", "procps", "dpkg-dev",
]
SOURCES_DIR = Path("/etc/apt/sources.list.d")
DERIVED = SOURCES_DIR / "serpentlib-src.sources"
DERIVED_LIST = SOURCES_DIR / "serpentlib-src.list"


def deb822_with_sources(text: str) -> str:
    """deb822 stanzas of `text` that carry `deb`, turned into `deb-src` stanzas."""
    out = []
    for stanza in re.split(r"\n\s*\n", text.strip()):
        lines = stanza.splitlines()
        types = next((ln for ln in lines if ln.lower().startswith("types:")), None)
        if not types or "deb" not in types.split(":", 1)[1].split():
            continue
        if "deb-src" in types.split(":", 1)[1].split():
            continue
        out.append("\n".join("Types: deb-src" if ln is types else ln for ln in lines))
    return "\n\n".join(out) + ("\n" if out else "")


def one_line_with_sources(text: str) -> str:
    """One-line `deb ...` entries of a sources.list turned into `deb-src ...`."""
    lines = [re.sub(r"^deb(\s)", r"deb-src\1", ln.strip()) for ln in text.splitlines()
             if re.match(r"^deb\s", ln.strip())]
    return "\n".join(lines) + ("\n" if lines else "")


def has_deb_src(files: list[Path]) -> bool:
    for f in files:
        text = f.read_text(errors="replace")
        if re.search(r"^\s*deb-src\s", text, re.MULTILINE) or re.search(r"^Types:.*\bdeb-src\b", text, re.MULTILINE):
            if not re.search(r"^Enabled:\s*no", text, re.MULTILINE | re.IGNORECASE):
                return True
    return False


def apt_source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")] + sorted(SOURCES_DIR.glob("*.list")) + sorted(SOURCES_DIR.glob("*.sources"))
    return [f for f in files if f.is_file()]


def ensure_deb_src() -> bool:
    """Write deb-src entries mirroring the machine's deb entries; True if anything was written."""
    files = [f for f in apt_source_files() if f not in (DERIVED, DERIVED_LIST)]
    if has_deb_src(files) or DERIVED.exists() or DERIVED_LIST.exists():
        return False
    deb822 = "".join(deb822_with_sources(f.read_text()) for f in files if f.suffix == ".sources")
    oneline = "".join(one_line_with_sources(f.read_text()) for f in files if f.suffix == ".list")
    if deb822:
        DERIVED.write_text("# derived by serpentlib from this machine's apt sources\n" + deb822)
    if oneline:
        DERIVED_LIST.write_text("# derived by serpentlib from this machine's apt sources\n" + oneline)
    return bool(deb822 or oneline)


def missing_packages(packages: list[str]) -> list[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n", *packages],
                          capture_output=True, text=True)
    installed = {ln.split()[0] for ln in proc.stdout.splitlines() if ln.split()[1:2] == ["ii"]}
    return [p for p in packages if p not in installed]


def main(argv: list[str]) -> int:
    extra = argv[1:]
    if os.geteuid() != 0:
        print("serpentlib host setup needs root (apt-get install, deb-src entries); run it with sudo",
              file=sys.stderr)
        return 2
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wrote = ensure_deb_src()
    missing = missing_packages(HOST_PACKAGES + extra)
    if wrote or missing or not list(Path("/var/lib/apt/lists").glob("*Sources*")):
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    if missing:
        print(f"installing host packages: {' '.join(missing)}")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)
    print("host ready: deb-src enabled, host tools installed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
