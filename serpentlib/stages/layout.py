"""The roots' layout and sandboxes: the /usr-merged tree every root starts from, its base files,
and how commands run in a root (stage 2's alone, stage 3's chroot with /serpent and /build)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..build.sandbox import Bind, Sandbox

# /bin, /sbin, /lib and /lib64 are links into /usr, as in the seed.
ROOT_LINKS = {"bin": "usr/bin", "sbin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib", "usr/sbin": "bin",
              "usr/lib64": "lib"}
ROOT_DIRS = ("usr/bin", "usr/lib", "usr/include", "usr/share", "etc", "tmp", "proc", "dev", "root")

# The base files, as Debian's base-files and base-passwd give them: stage 3's root gets them
# at the start (tools look up users), stage 4's from its `filesystem` package.
BASE_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}

ROOT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
CHROOT_PATH = ROOT_PATH + ":/serpent/usr/bin"  # /serpent's tools last: each install replaces one
SERPENT_SHELL = "/serpent/usr/bin/bash"


def write_base_files(root: Path) -> None:
    for rel, text in BASE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        (root / rel).chmod(0o640 if rel.endswith("shadow") else 0o644)


def make_root_layout(root: Path) -> None:
    for d in ROOT_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    for link, target in ROOT_LINKS.items():
        path = root / link
        if not path.is_symlink():
            os.symlink(target, path)
    (root / "tmp").chmod(0o1777)


def root_sandbox(root: Path, shell: str = "/usr/bin/sh", binds: list[Bind] | None = None,
                 path: str = ROOT_PATH) -> Sandbox:
    """A root alone: nothing from the host but /proc, a minimal /dev, a tmpfs /tmp (and /run, where
    the root has none)."""
    return Sandbox(root=root, binds=binds or [], path=path, shell=shell)


@dataclass(frozen=True)
class Chroot:
    """Stage 3's chroot: its `root`, the build trees (`builds`, at /build inside) and stage 2's
    root (`serpent`, at /serpent, read-only), or None once the root must stand alone."""

    root: Path
    builds: Path
    serpent: Path | None = None

    def sandbox(self, env: dict[str, str], serpent: bool = True) -> Sandbox:
        """Commands in the chroot: with /serpent and its shell, or (`serpent=False`) without."""
        binds = [Bind(self.builds, "/build", readonly=False)]
        if serpent and self.serpent is not None:
            binds.insert(0, Bind(self.serpent, "/serpent", readonly=True))
            return Sandbox(root=self.root, binds=binds, path=CHROOT_PATH, shell=SERPENT_SHELL, env=env)
        return Sandbox(root=self.root, binds=binds, path=ROOT_PATH, shell="/usr/bin/bash", env=env)

    def inside(self, path: Path) -> str:
        """Where the chroot sees a build tree's host `path`."""
        return "/build/" + str(Path(path).relative_to(self.builds))
