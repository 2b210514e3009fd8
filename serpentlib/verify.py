"""Toolchain checks. Each returns CheckRecords; none raises for a failed check."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from .errors import CheckError
from .metrics import CheckRecord
from .sandbox import Bind, Sandbox

MUSL_INTERP = "/lib/ld-musl-x86_64.so.1"
GLIBC_LIBS = re.compile(r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux.*|"
                        r"libgcc_s\.so\.1|libstdc\+\+\.so\.6)$")
# A host path in an ELF file: glibc's multiarch directories, a GCC installation's directory, the
# path of glibc's loader. A compiler's own tables name the bare prefix "/usr/lib/gcc/" (where
# to look for a GCC) and the loader's bare name (what to link for a glibc target): not paths.
# A glob is no path: Python's Makefile tells lcov to leave out '/usr/lib/gcc/*'.
HOST_PATHS = re.compile(rb"(?:/usr)?/lib/x86_64-linux-gnu[^\x00\s]*|/usr/lib/gcc/[^\x00\s/*][^\x00\s]*"
                        rb"|/lib(?:64)?/ld-linux-x86-64[^\x00\s]*")
_HOST_HINTS = (b"x86_64-linux-gnu", b"/usr/lib/gcc/", b"/ld-linux-x86-64")


# A path given as the old prefix of one of these flags is one the build maps away, not one it uses:
# a package that records its CFLAGS (python3-config, bashbug) holds `-ffile-prefix-map=/serpent/=/`.
PREFIX_MAPS = re.compile(rb"-f(?:file|debug|macro|profile)-prefix-map=$")


def _used(data: bytes, path: bytes) -> bool:
    """Whether `data` holds `path` other than as the old prefix of a prefix-map flag."""
    at = data.find(path)
    while at >= 0:
        if not PREFIX_MAPS.search(data, max(at - 24, 0), at):
            return True
        at = data.find(path, at + 1)
    return False


def host_paths_in(data: bytes, extra: Iterable[str] = ()) -> list[str]:
    """The host paths (see HOST_PATHS) and `extra` strings `data` holds, a few of each; an `extra`
    path that appears only as what a prefix-map flag maps away is not one."""
    hits: list[str] = []
    if any(h in data for h in _HOST_HINTS):  # the regex only where a literal says it may match
        hits = sorted({m.group().decode(errors="replace") for m in HOST_PATHS.finditer(data)})[:3]
    return hits + [s for s in extra if _used(data, s.encode())]


@dataclass(frozen=True)
class ElfInfo:
    path: Path
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    static: bool
    soname: str | None = None
    bind_now: bool = False       # DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW
    relro: bool = False          # a PT_GNU_RELRO segment
    symbols: frozenset[str] = frozenset()  # undefined dynamic symbols and a few telling defined ones


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(magic)) == magic
    except OSError:
        return False


def is_elf(path: Path) -> bool:
    return _starts_with(path, b"\x7fELF")


def is_archive(path: Path) -> bool:
    return _starts_with(path, b"!<arch>\n")


def archive_members(path: Path) -> Iterable[bytes]:
    """The ELF objects in a static library (ar's format: 60-byte headers, members padded to even)."""
    data = Path(path).read_bytes()
    at = 8
    while at + 60 <= len(data):
        size = int(data[at + 48:at + 58].decode().strip() or 0)
        member = data[at + 60:at + 60 + size]
        if member[:4] == b"\x7fELF":
            yield member
        at += 60 + size + (size & 1)


def archive_info(path: Path) -> list[ElfInfo]:
    """elf_info of each ELF object in a static library, all named by the library's path; a member
    pyelftools cannot read is left out (an unreadable ELF file is elf_closure's to report)."""
    out = []
    for member in archive_members(path):
        try:
            out.append(elf_info(path, io.BytesIO(member)))
        except (ELFError, ValueError):
            continue
    return out


def elf_info(path: Path, stream=None) -> ElfInfo:
    """What an ELF file says of itself; from `stream` when given (an archive's member)."""
    with (open(path, "rb") if stream is None else stream) as fh:
        elf = ELFFile(fh)
        interp = soname = None
        needed: list[str] = []
        rpath: list[str] = []
        has_dynamic = bind_now = relro = False
        symbols: set[str] = set()
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
            relro = relro or seg["p_type"] == "PT_GNU_RELRO"
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                has_dynamic = True
                for tag in sec.iter_tags():
                    t = tag.entry.d_tag
                    if t == "DT_NEEDED":
                        needed.append(tag.needed)
                    elif t == "DT_SONAME":
                        soname = tag.soname
                    elif t in ("DT_RPATH", "DT_RUNPATH"):
                        rpath.append(getattr(tag, "rpath", None) or getattr(tag, "runpath", ""))
                    elif t == "DT_BIND_NOW" or (t == "DT_FLAGS" and tag.entry.d_val & 0x8) or \
                            (t == "DT_FLAGS_1" and tag.entry.d_val & 0x1):
                        bind_now = True
            elif sec["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM"):
                symbols.update(sym.name for sym in sec.iter_symbols() if sym.name.startswith("__") and
                               sym.name.endswith("_chk") or sym.name == "__stack_chk_fail")
        return ElfInfo(Path(path), interp, tuple(needed), tuple(rpath), not has_dynamic, soname, bind_now, relro,
                       frozenset(symbols))


def elf_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink() and is_elf(p):
                yield p


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
    """No glibc NEEDED, no RPATH/RUNPATH, musl or no interpreter, no host paths in any ELF under `root`."""
    extra_forbidden = list(extra_forbidden)
    records = []
    for path, rel, info in _each_elf(stage, "elf-readable", root, records):
        problems = []
        bad = [n for n in info.needed if GLIBC_LIBS.match(n)]
        if bad:
            problems.append(f"NEEDED glibc/gcc libraries {bad}")
        if info.rpath:
            problems.append(f"RPATH/RUNPATH {list(info.rpath)}")
        if info.interpreter not in (None, MUSL_INTERP):
            problems.append(f"interpreter {info.interpreter}")
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
        rec = host.run(compile_cmd, cwd=progs, log=logs / f"{name}.log", stage=stage, phase="compile")
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
        run = target.run([f"/check/{name}"], cwd="/", log=out_log, stage=stage, phase="run")
        output = out_log.read_text(errors="replace").splitlines()[1:]  # line 0 is the sandbox's header
        ok = run.exit_code == 0 and expect in output
        records.append(CheckRecord(stage, "runs", name, ok, f"exit {run.exit_code}; output {' | '.join(output)[:200]}"))
    records += check_elf_hygiene(stage, progs)
    return records


def require_passed(checks: list[CheckRecord]) -> None:
    """Raise CheckError naming every failed check: a fail, or an xpass (passed, though expected to fail)."""
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "\n".join(f"  {c.check} {c.subject}: {c.outcome}: " +
                          (f"passed, though expected to fail ({c.reason}); {c.detail}" if c.outcome == "xpass" else c.detail)
                          for c in failed[:20])
        hint = "see the verification table in the notebook and the logs under logs/<stage>/checks"
        if any(c.outcome == "xpass" for c in failed):
            hint += "; an xpass is fixed by taking the check off its list of expected failures"
        raise CheckError(f"{len(failed)} of {len(checks)} checks failed:\n{lines}", hint)


def _in_root(root: Path, path: str) -> Path:
    """Resolve `path` as the root's own programs would see it: absolute links and `..` stay
    inside the root. A link loop ends on a link."""
    done: list[str] = []
    parts = [p for p in path.split("/") if p]
    for _ in range(64):
        if not parts:
            break
        part = parts.pop(0)
        if part in (".", ".."):
            if part == ".." and done:
                done.pop()
            continue
        candidate = root.joinpath(*done, part)
        if candidate.is_symlink():
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                done = []
            continue
        done.append(part)
    return root.joinpath(*done, *parts)


def check_root_closure(stage: str, root: Path, libdirs: Iterable[str] = ("/usr/lib", "/lib")) -> list[CheckRecord]:
    """Every ELF in `root` is static or uses the musl loader, and needs only libraries the root has."""
    records = []
    for _path, rel, info in _each_elf(stage, "elf-closure", root, records, prefix="/"):
        problems = []
        if info.interpreter is not None:
            if info.interpreter != MUSL_INTERP:
                problems.append(f"interpreter {info.interpreter}")
            elif not _in_root(root, info.interpreter).is_file():
                problems.append(f"the root has no {info.interpreter}")
        missing = [n for n in info.needed if not any(_in_root(root, f"{d}/{n}").is_file() for d in libdirs)]
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
        rec = sandbox.run(command, cwd="/", log=log, stage=stage, phase="check")
        output = "\n".join(log.read_text(errors="replace").splitlines()[1:])
        ok = rec.exit_code == 0 and expect in output
        records.append(CheckRecord(stage, "runs-in-root", subject, ok,
                                   f"exit {rec.exit_code}; {output.strip()[:160]!r}"))
    return records


def check_replaced(stage: str, old_root: Path, new_root: Path, dirs: Iterable[str] = ("usr/bin", "usr/lib")) -> list[CheckRecord]:
    """Every program and library of `old_root` (stage2, /serpent) has a counterpart in `new_root`."""
    records = []
    for d in dirs:
        for path in sorted((old_root / d).iterdir()):
            if path.is_dir() and not path.is_symlink():
                continue
            rel = f"/{d}/{path.name}"
            twin = _in_root(new_root, rel)
            ok = twin.exists() and not twin.is_symlink()  # a link that leads nowhere replaces nothing
            link = (new_root / rel.lstrip("/")).is_symlink()
            records.append(CheckRecord(stage, "replaces-serpent", rel, ok,
                                       "built in this stage" if ok else
                                       "a link that leads nowhere in this root" if link else "still only under /serpent"))
    return records
