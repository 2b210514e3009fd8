"""Global tuning flags: named groups of compiler and linker flags the profile declares, e.g.

    flags:
      optimize: {cflags: -O2}
      harden:   {cflags: -fstack-protector-strong -D_FORTIFY_SOURCE=2, ldflags: -Wl,-z,relro}
      bindnow:  {ldflags: -Wl,-z,now}

Before stage 3 builds, each flag is tried with the stage's compiler on a probe program and
judged by its effect on the output: `honored` (the ELF shows it, or the output changed),
`no effect` (accepted, same output), or `rejected` (the compiler refused it: left out of the
builds, so one unsupported flag does not fail every package). Stage 4 then reads each
package's ELF files for the flags that leave a mark.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ProfileError
from ..elf import ElfInfo, elf_info

PROBE_C = r"""#include <stdio.h>
#include <string.h>
int shout(const char *s) { char buf[64]; strcpy(buf, s); printf("%s!\n", buf); return (int)strlen(buf); }
int main(int argc, char **argv) { return shout(argc > 1 ? argv[1] : "probe") > 0 ? 0 : 1; }
"""

# What a flag leaves in an ELF file, where it leaves something.
def _marks(flag: str):
    if flag in ("-Wl,-z,now", "-Wl,-znow"):
        return "BIND_NOW", lambda i: i.bind_now
    if flag in ("-Wl,-z,relro", "-Wl,-zrelro"):
        return "PT_GNU_RELRO", lambda i: i.relro
    if flag.startswith("-fstack-protector"):
        return "__stack_chk_fail", lambda i: "__stack_chk_fail" in i.symbols
    if flag.startswith("-D_FORTIFY_SOURCE"):
        return "__*_chk calls", lambda i: any(s != "__stack_chk_fail" for s in i.symbols)
    return None


# Compiler flags that mark only the functions they apply to, and which those are: a package none
# of whose functions is one shows no mark, though the flag was on every compile.
SELECTIVE = {
    "-fstack-protector-strong": "functions with a local array or a local whose address is taken",
    "-fstack-protector": "functions with a local char array of 8 bytes or more",
    "-D_FORTIFY_SOURCE": "calls to the C library functions it can check",
}
COMPILER = re.compile(r"^(?:.*-)?(?:clang|clang\+\+|gcc|g\+\+|cc|c\+\+|tcc)(?:-[0-9.]+)?$")


def marks_only(flag: str) -> str | None:
    """What the flag marks, when it marks only some functions (see SELECTIVE); None otherwise."""
    return SELECTIVE.get(flag.split("=")[0])


def compile_commands(log: str) -> list[list[str]]:
    """The compiler commands that compile a source file (`-c`) in a build log, as words: how
    Debian's blhc reads a build's flags where the binary cannot show them."""
    out = []
    for line in log.splitlines():
        line = line.strip().removeprefix("libtool: compile:").strip()
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if words and COMPILER.match(words[0].rsplit("/", 1)[-1]) and "-c" in words:
            out.append(words)
    return out


@dataclass(frozen=True)
class Flag:
    group: str
    flag: str
    kind: str        # cflags or ldflags


@dataclass
class FlagResult:
    group: str
    flag: str
    kind: str
    status: str      # honored, no effect, rejected
    detail: str

    @property
    def applied(self) -> bool:
        return self.status != "rejected"


def parse_flags(groups: dict) -> list[Flag]:
    if not isinstance(groups, dict):
        raise ProfileError("flags: expected a mapping of group names to {cflags, ldflags}",
                           "write `flags: {harden: {cflags: -fstack-protector-strong, ldflags: -Wl,-z,relro}}`")
    out = []
    for group, spec in groups.items():
        if not isinstance(spec, dict) or set(spec) - {"cflags", "ldflags"}:
            raise ProfileError(f"flags: {group}: expected {{cflags: ..., ldflags: ...}}, got {spec!r}",
                               "give each group cflags and/or ldflags, as strings; in YAML, quote flags with commas: \"-Wl,-z,now\"")
        for kind in ("cflags", "ldflags"):
            value = spec.get(kind, "") or ""
            if not isinstance(value, str):
                raise ProfileError(f"flags: {group}.{kind}: expected a string, got {value!r}",
                                   "write the flags as one string, as on a command line")
            out += [Flag(group, f, kind) for f in value.split()]
    return out


def probe_script(flags: list[Flag], cc: str, where: str) -> str:
    """Shell lines that compile the probe once plainly and once per flag; exit codes and errors
    go to files beside the outputs."""
    lines = [f"cd {where}", f"{cc} -o base probe.c > base.err 2>&1; echo $? > base.rc"]
    for i, f in enumerate(flags):
        args = f"{f.flag} -o out{i} probe.c" if f.kind == "cflags" else f"-o out{i} probe.c {f.flag}"
        lines.append(f"{cc} {args} > out{i}.err 2>&1; echo $? > out{i}.rc")
    return "\n".join(lines) + "\n"


def judge(flags: list[Flag], where: Path) -> list[FlagResult]:
    """Read the probe's outputs (see probe_script) and judge each flag."""
    if (where / "base.rc").read_text().strip() != "0":
        raise ProfileError(f"the compiler cannot build the flag probe at all: {(where / 'base.err').read_text()[:300]}",
                           "check the stage's compiler")
    base = (where / "base").read_bytes()
    out = []
    for i, f in enumerate(flags):
        rc = (where / f"out{i}.rc").read_text().strip()
        err = (where / f"out{i}.err").read_text(errors="replace").strip().replace("\n", " ")[:200]
        if rc != "0":
            out.append(FlagResult(f.group, f.flag, f.kind, "rejected", f"exit {rc}: {err}; left out of the builds"))
            continue
        mark = _marks(f.flag)
        if mark:
            shows = mark[1](elf_info(where / f"out{i}"))
            status = "honored" if shows else "no effect"
            detail = f"{mark[0]} {'present' if shows else 'absent'} in the output"
            if not shows and f.flag.startswith("-D_FORTIFY_SOURCE"):
                detail += (" (fortified __*_chk functions come from the C library's headers, which musl's do not"
                           " provide, and only in optimised compiles)")
        else:
            same = (where / f"out{i}").read_bytes() == base
            status = "no effect" if same else "honored"
            detail = "output identical to the plain build" if same else "output differs from the plain build"
        out.append(FlagResult(f.group, f.flag, f.kind, status, detail + (f"; compiler said: {err}" if err else "")))
    return out


def build_env(results: list[FlagResult], base_cflags: str = "") -> dict[str, str]:
    """CFLAGS (and CXXFLAGS, for C++ builds such as LLVM's) and LDFLAGS for the builds: the flags the
    compiler accepts."""
    cflags = [r.flag for r in results if r.kind == "cflags" and r.applied]
    ldflags = [r.flag for r in results if r.kind == "ldflags" and r.applied]
    compile_flags = " ".join([base_cflags] + cflags if base_cflags else cflags)
    return {"CFLAGS": compile_flags, "CXXFLAGS": compile_flags, "LDFLAGS": " ".join(ldflags)}


def shows(flag: str, info: ElfInfo) -> bool | None:
    """Whether one ELF file carries the flag's mark; None when the flag leaves none."""
    mark = _marks(flag)
    return mark[1](info) if mark else None


def mark_name(flag: str) -> str | None:
    """What the flag leaves in an ELF file (BIND_NOW, PT_GNU_RELRO, ...); None when nothing."""
    mark = _marks(flag)
    return mark[0] if mark else None


def save(results: list[FlagResult], compiler: str, path: Path) -> None:
    path.write_text(json.dumps({"compiler": compiler, "flags": [asdict(r) for r in results]}, indent=1) + "\n")


def load(path: Path) -> tuple[str, list[FlagResult]]:
    if not path.is_file():
        return "", []
    data = json.loads(path.read_text())
    return data["compiler"], [FlagResult(**r) for r in data["flags"]]


__all__ = ["Flag", "FlagResult", "PROBE_C", "build_env", "compile_commands", "judge", "load", "mark_name", "marks_only", "parse_flags", "probe_script", "save", "shows"]
