"""Stage 3's final compiler, chosen once per stage by name as build styles are: its environment in
the chroot, the /serpent tools it needs until it is built, how it says its version, its checks."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..build.sandbox import Sandbox
from ..errors import ProfileError
from ..rows import CheckRecord
from .clang import Clang
from .common import StageRun
from .layout import Chroot
from .tcc import Tcc


class FinalCompiler(Protocol):
    name: str
    serpent_links: tuple[str, ...]   # /usr/bin links to /serpent's tools, `tool` or `tool:name`
    tools: tuple[str, ...]           # besides make, bash and sh: on PATH at /usr/bin once built
    prefix_map: str                  # the flag that maps /serpent away in what it records
    keep_trees: frozenset[str]       # packages whose build tree the checks need
    version_command: str

    def env(self, serpent: bool = False) -> dict[str, str]: ...

    def checks(self, st: StageRun, chroot: Chroot, alone: Sandbox, build_env: dict[str, str]) -> list[CheckRecord]: ...


COMPILERS: dict[str, FinalCompiler] = {"tcc": Tcc(), "clang": Clang()}


def final_compiler(name: str) -> FinalCompiler:
    if name not in COMPILERS:
        raise ProfileError(f"stage3: unknown compiler {name!r}", f"use one of {', '.join(COMPILERS)}")
    return COMPILERS[name]


def link_serpent_tools(root: Path, compiler: FinalCompiler) -> None:
    for item in compiler.serpent_links:
        tool, _, name = item.partition(":")
        (root / "usr" / "bin" / (name or tool)).symlink_to(f"/serpent/usr/bin/{tool}")
