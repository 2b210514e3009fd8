"""`serpent shell`: a shell (or a command) in what a stage made, in the same sandbox as its builds.

Stage 1: the seed (stage 0), read-only, with stage 1's cross compilers first on PATH and the
current directory writable at its own path, to cross-compile a program of one's own. Stages 2-4:
the stage's root, read-only, with a scratch /tmp (stage 3 with stage 2 at /serpent if asked).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..build.cache import stage_marker
from ..build.profile import Profile
from ..build.sandbox import Bind, Sandbox
from ..build.seed import ensure as ensure_seed
from ..errors import SerpentError


def shell_sandbox(profile: Profile, stage: int, work_dir: Path, serpent: bool = False,
                  cwd: Path | None = None) -> tuple[Sandbox, str, Path]:
    """The sandbox, the shell and the working directory of `serpent shell --stage N`."""
    env = {"HOME": "/tmp", "TERM": os.environ.get("TERM", "dumb"), "PS1": f"(serpent {profile.name} stage{stage}) \\w \\$ "}
    if serpent and stage != 3:
        raise SerpentError("--serpent is for stage 3: only its root is built with stage 2 at /serpent",
                           "leave --serpent out, or use --stage 3")
    if stage == 1:
        return _stage1(profile, work_dir, (cwd or Path.cwd()).resolve(), env)
    root = work_dir / f"stage{stage}" / "root"
    if not (root / "usr" / "bin").is_dir():
        raise SerpentError(f"no stage {stage} root in {work_dir} ({root} is missing or empty)",
                           f"build it first: serpent run --profile {profile.name} --stage {stage}"
                           f" --work-dir {work_dir}, or give its --work-dir")
    binds = [Bind(work_dir / "stage2" / "root", "/serpent", readonly=True)] if serpent else []
    shell = next((s for s in ("/usr/bin/bash", "/usr/bin/sh", "/bin/sh") if (root / s.lstrip("/")).exists()), "/bin/sh")
    # The root read-only; /tmp is a scratch tmpfs, gone with the shell.
    return Sandbox(seed=root, binds=binds, shell=shell, path="/usr/bin:/usr/sbin:/bin:/sbin", env=env), shell, Path("/tmp")


def _stage1(profile: Profile, work_dir: Path, cwd: Path, env: dict[str, str]) -> tuple[Sandbox, str, Path]:
    stage1 = work_dir.resolve() / "stage1"
    stage_marker(stage1)  # a clear error when stage 1 has not completed there
    seed = ensure_seed(profile.common.get("seed") or {})
    for what, place in (("the work directory", stage1.parent.resolve()), ("stage 0", seed.root.resolve())):
        if place.is_relative_to(cwd) or cwd.is_relative_to(place):
            raise SerpentError(f"serpent shell --stage 1 makes the current directory {cwd} writable, and it holds "
                               f"{what} ({place})", "cd into a directory of your own program's first")
    sandbox = seed.sandbox(path=f"{stage1 / 'bin'}:/usr/bin:/bin", visible=[stage1], writable=[cwd],
                           env={**env, "HOME": str(cwd)})
    return sandbox, "/bin/bash", cwd
