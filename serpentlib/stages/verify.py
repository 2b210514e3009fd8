"""Toolchain checks. Each returns CheckRecords; none raises for a failed check."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from elftools.common.exceptions import ELFError

from ..build.sandbox import Bind, Sandbox
from ..elf import MUSL_INTERP, elf_info, host_paths_in, is_elf, violations
from ..files import in_root, walk
from ..rows import CheckRecord, Step

def elf_files(root: Path) -> Iterable[Path]:
    return (e.path for e in walk(root) if e.is_file and is_elf(e.path))


def _each_elf(stage: str, check: str, root: Path, records: list[CheckRecord], prefix: str = ""):
    """(path, name in the root, ElfInfo) of every ELF under `root`; an unreadable one becomes a
    failed record in `records` instead."""
    for path in sorted(elf_files(root)):
        rel = prefix + str(path.relative_to(root))
        try:
            yield path, rel, elf_info(path)
        except ELFError as exc:
            records.append(CheckRecord(stage, check, rel, False, str(exc)))


def check_elf_hygiene(stage: str, root: Path, extra_forbidden: Iterable[str] = ()) -> list[CheckRecord]:
    """No glibc NEEDED, no RPATH (a RUNPATH only to a library directory under /usr/lib), musl or no
    interpreter, no host paths in any ELF under `root`."""
    extra_forbidden = list(extra_forbidden)
    records = []
    for path, rel, info in _each_elf(stage, "elf-readable", root, records):
        problems = [problem for _rule, problem in violations(info)]
        hits = host_paths_in(path.read_bytes(), extra_forbidden)
        if hits:
            problems.append(f"embeds host paths {hits}")
        records.append(CheckRecord(stage, "elf-clean", rel, not problems, "; ".join(problems) or
                                   f"interp={info.interpreter or 'static'} needed={','.join(info.needed) or '-'}"))
    return records


HELLO_C = r'''#include <stdio.h>
int main(void) { printf("hello from musl\n"); return 0; }
'''

HELLO_CXX = r'''#include <iostream>
#include <stdexcept>
#include <thread>
#include <atomic>
static int thrower(int x) { if (x > 0) throw std::runtime_error("boom"); return x; }
int main() {
    std::atomic<int> n{0};
    std::thread t([&] { try { thrower(1); } catch (const std::runtime_error& e) { if (std::string(e.what()) == "boom") n += 1; } });
    t.join();
    try { thrower(2); } catch (const std::exception&) { n += 1; }
    std::cout << "caught " << n.load() << std::endl;
    return n.load() == 2 ? 0 : 1;
}
'''

PROGRAMS = {  # name: (source file, source text, compiler suffix, link flags, expected output)
    "hello-c-dynamic": ("hello.c", HELLO_C, "clang", [], "hello from musl"),
    "hello-c-static": ("hello.c", HELLO_C, "clang", ["-static"], "hello from musl"),
    "cxx-eh-thread-dynamic": ("eh.cpp", HELLO_CXX, "clang++", ["-pthread"], "caught 2"),
    "cxx-eh-thread-static": ("eh.cpp", HELLO_CXX, "clang++", ["-static", "-pthread"], "caught 2"),
}


def check_cross_compiler(stage: str, bindir: Path, triple: str, sysroot: Path, workdir: Path,
                         logs: Path, seed: Sandbox) -> list[CheckRecord]:
    """Compile the test programs with the cross wrappers (in `seed`, stage 0's sandbox), inspect
    them, run them in a musl-only root."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    progs, root = workdir / "check", workdir / "root"
    progs.mkdir(parents=True)
    root.mkdir()
    host = replace(seed, writable=[progs], visible=[bindir.parent, sysroot])
    # The programs run in a root holding only the sysroot's /usr and /lib: nothing from the host.
    target = Sandbox(root=root, binds=[Bind(sysroot / "usr", "/usr"), Bind(sysroot / "lib", "/lib"),
                                       Bind(progs, "/check", readonly=False)], path="/usr/bin")
    records: list[CheckRecord] = []
    for name, (fname, text, cc, flags, expect) in PROGRAMS.items():
        (progs / fname).write_text(text)
        compile_cmd = [str(bindir / f"{triple}-{cc}"), "-O2", fname, "-o", name, *flags]
        rec = host.run(compile_cmd, cwd=progs, log=logs / f"{name}.log", step=Step(stage, phase="compile"))
        if rec.exit_code != 0:
            records.append(CheckRecord(stage, "compile", name, False, f"exit {rec.exit_code}; see {rec.log}"))
            continue
        records.append(CheckRecord(stage, "compile", name, True, " ".join(compile_cmd[1:])))
        info = elf_info(progs / name)
        if "static" in name:
            ok = info.static and info.interpreter is None
            records.append(CheckRecord(stage, "static", name, ok, f"interp={info.interpreter} needed={info.needed}"))
        else:
            ok = info.interpreter == MUSL_INTERP
            records.append(CheckRecord(stage, "interpreter", name, ok, str(info.interpreter)))
        out_log = logs / f"{name}.run.log"
        out_log.unlink(missing_ok=True)
        run = target.run([f"/check/{name}"], cwd="/", log=out_log, step=Step(stage, phase="run"))
        output = out_log.read_text(errors="replace").splitlines()[1:]  # line 0 is the sandbox's header
        ok = run.exit_code == 0 and expect in output
        records.append(CheckRecord(stage, "runs", name, ok, f"exit {run.exit_code}; output {' | '.join(output)[:200]}"))
    records += check_elf_hygiene(stage, progs)
    return records


def check_root_closure(stage: str, root: Path, libdirs: Iterable[str] = ("/usr/lib", "/lib")) -> list[CheckRecord]:
    """Every ELF in `root` is static or uses the musl loader, and needs only libraries the root has:
    in `libdirs`, in its RUNPATH, or in a RUNPATH of a file that needs it (musl's loader searches
    those of the chain that loads a library: systemd's libsystemd-core finds libsystemd-shared in
    /usr/lib/systemd through the programs that load it)."""
    records: list[CheckRecord] = []
    files = list(_each_elf(stage, "elf-closure", root, records, prefix="/"))
    via: dict[str, set[str]] = {}  # a library's name -> the RUNPATHs of the files that need it
    for _path, _rel, info in files:
        for name in info.needed:
            via.setdefault(name, set()).update(info.runpath)
    for path, rel, info in files:
        problems = []
        if info.interpreter is not None:
            if info.interpreter != MUSL_INTERP:
                problems.append(f"interpreter {info.interpreter}")
            elif not in_root(root, info.interpreter).is_file():
                problems.append(f"the root has no {info.interpreter}")
        # a RUNPATH violations() allows: a directory of the root
        dirs = [*libdirs, *info.runpath, *sorted(via.get(info.soname or "", set()) | via.get(path.name, set()))]
        missing = [n for n in info.needed if not any(in_root(root, f"{d}/{n}").is_file() for d in dirs)]
        if missing:
            problems.append(f"needs {missing}, which the root lacks")
        kind = "static" if info.static else f"needs {','.join(info.needed) or '-'}"
        records.append(CheckRecord(stage, "elf-closure", rel, not problems, "; ".join(problems) or kind))
    return records


def check_in_root(stage: str, sandbox: Sandbox, commands: dict[str, tuple[str, str]], logs: Path) -> list[CheckRecord]:
    """Run each `subject: (shell command, expected output fragment)` in the sandbox's root."""
    records = []
    for subject, (command, expect) in commands.items():
        log = logs / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', subject)}.log"
        log.unlink(missing_ok=True)
        rec = sandbox.run(command, cwd="/", log=log, step=Step(stage, phase="check"))
        # What the program printed: the log less its header, which names the whole command
        text = log.read_text(errors="replace")
        output = text[text.index(command) + len(command):] if command in text else text.partition("\n")[2]
        ok = rec.exit_code == 0 and expect in output
        records.append(CheckRecord(stage, "runs-in-root", subject, ok,
                                   f"exit {rec.exit_code}; printed {output.strip()[:240]!r}"))
    return records


def check_replaced(stage: str, old_root: Path, new_root: Path, dirs: Iterable[str] = ("usr/bin", "usr/lib")) -> list[CheckRecord]:
    """Every program and library of `old_root` (stage2, /serpent) has a counterpart in `new_root`."""
    records = []
    for d in dirs:
        for path in sorted((old_root / d).iterdir()):
            if path.is_dir() and not path.is_symlink():
                continue
            rel = f"/{d}/{path.name}"
            twin = in_root(new_root, rel)
            ok = twin.exists() and not twin.is_symlink()  # a link that leads nowhere replaces nothing
            link = (new_root / rel.lstrip("/")).is_symlink()
            records.append(CheckRecord(stage, "replaces-serpent", rel, ok,
                                       "built in this stage" if ok else
                                       "a link that leads nowhere in this root" if link else "still only under /serpent"))
    return records
