"""Build styles: how a recipe's `build:` mapping becomes configure, build and install commands.

Each style is one small function from a BuildSpec to shell commands. Commands run in the
sandbox with SRC, DESTDIR, PREFIX and JOBS (and the stage's variables) in the environment;
recipe arguments are quoted as one word each but `$VARS` in them still expand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .recipes import BuildSpec

PHASES = ("configure", "build", "check", "install")
Commands = dict[str, str | None]


def word(arg: str) -> str:
    """Double-quote `arg` so it stays one word while `$VAR` still expands."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return f'"{escaped}"'


def words(args: Sequence[str] | str) -> str:
    return " ".join(word(a) for a in ([args] if isinstance(args, str) else args))


def _src(spec: BuildSpec) -> str:
    return '"$SRC"' + (f"/{spec.subdir}" if spec.subdir else "")


def autotools(spec: BuildSpec) -> Commands:
    return {
        "configure": f'{_src(spec)}/configure --prefix="$PREFIX" {words(spec.configure)}'.rstrip(),
        "build": f'make -j"$JOBS" {words(spec.build)}'.rstrip(),
        "install": f'make DESTDIR="$DESTDIR" {words(spec.install)} install'.replace("  ", " "),
    }


# The stage's LDFLAGS (stage 3's tuning flags: relro, now) reach every link, as with autotools,
# whatever linker flags a recipe sets: the Release ones are added after those.
CMAKE_LDFLAGS = " ".join(f'-DCMAKE_{kind}_LINKER_FLAGS_RELEASE="$LDFLAGS"' for kind in ("EXE", "SHARED", "MODULE"))


def cmake(spec: BuildSpec) -> Commands:
    return {
        "configure": (f'cmake -S {_src(spec)} -B . -G Ninja -DCMAKE_BUILD_TYPE=Release '
                      f'-DCMAKE_INSTALL_PREFIX="$PREFIX" {CMAKE_LDFLAGS} {words(spec.configure)}').rstrip(),
        "build": f'cmake --build . -j "$JOBS" {words(spec.build)}'.rstrip(),
        "install": f'DESTDIR="$DESTDIR" cmake --install . {words(spec.install)}'.rstrip(),
    }


# Every meson build: the build type, no subproject fetched or used (what is missing fails), a
# cross file where the stage gives one (MESON_CROSS: the lane's, stage 2's).
MESON_SETUP = ('meson setup --prefix="$PREFIX" --libdir=lib --buildtype=release --wrap-mode=nofallback '
               '${MESON_CROSS:+--cross-file "$MESON_CROSS"}')


def meson(spec: BuildSpec) -> Commands:
    return {
        "configure": f'{MESON_SETUP} {words(spec.configure)} . {_src(spec)}'.replace("  ", " "),
        "build": f'ninja -j"$JOBS" {words(spec.build)}'.rstrip(),
        "install": f'DESTDIR="$DESTDIR" meson install --no-rebuild {words(spec.install)}'.rstrip(),
    }


def make(spec: BuildSpec) -> Commands:
    return {
        "configure": None,
        "build": f'make -C {_src(spec)} -j"$JOBS" {words(spec.build)}'.rstrip(),
        "install": f'make -C {_src(spec)} DESTDIR="$DESTDIR" {words(spec.install)} install'.replace("  ", " "),
    }


def script(spec: BuildSpec) -> Commands:
    def text(value: Sequence[str] | str) -> str | None:
        s = value if isinstance(value, str) else "\n".join(value)
        return f"set -e\n{s}" if s.strip() else None
    return {"configure": text(spec.configure), "build": text(spec.build), "install": text(spec.install)}


STYLES: dict[str, Callable[[BuildSpec], Commands]] = {
    "autotools": autotools, "cmake": cmake, "meson": meson, "make": make, "script": script,
}


def commands(spec: BuildSpec) -> Commands:
    """The shell command of each phase (None: the phase does nothing for this style)."""
    cmds = STYLES[spec.style](spec)
    cmds = {"configure": cmds["configure"], "build": cmds["build"],
            "check": f"set -e\n{spec.check.strip()}" if spec.check.strip() else None, "install": cmds["install"]}
    if spec.pre_configure.strip():
        pre = f'set -e\n(cd {_src(spec)}\n{spec.pre_configure.strip()}\n)'
        cmds["configure"] = pre + (f"\n{cmds['configure']}" if cmds["configure"] else "")
    if spec.post_install.strip():
        cmds["install"] = f"set -e\n{cmds['install'] or ':'}\n{spec.post_install.strip()}"
    return cmds
