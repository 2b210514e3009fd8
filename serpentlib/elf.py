"""ELF files: the one reader (what a file says of itself: interpreter, NEEDED, RPATH, SONAME,
hardening marks), static libraries' members, and the rules every ELF in a root must keep.

Each file is parsed once while it is unchanged: `elf_info` keeps what it read, keyed by the
file's identity (device, inode, size, mtime), so a check pass that asks four times reads once.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

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
    rpath: tuple[str, ...]       # DT_RPATH's directories
    static: bool
    soname: str | None = None
    bind_now: bool = False       # DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW
    relro: bool = False          # a PT_GNU_RELRO segment
    symbols: frozenset[str] = frozenset()  # undefined dynamic symbols and a few telling defined ones
    runpath: tuple[str, ...] = ()  # DT_RUNPATH's directories


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
            out.append(_read(Path(path), io.BytesIO(member)))
        except (ELFError, ValueError):
            continue
    return out


def elf_info(path: Path) -> ElfInfo:
    """What an ELF file says of itself, read once while the file is unchanged. Raises ELFError
    (or OSError) as reading it does."""
    st = os.stat(path)
    return _read_cached(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1 << 16)
def _read_cached(path: str, _dev: int, _ino: int, _size: int, _mtime: int) -> ElfInfo:
    with open(path, "rb") as fh:
        return _read(Path(path), fh)


# Functions a static library leaves in what links it (libwildebeest's): see pkg/wildebeest.py.
LINKED_IN = ("wildebeest_", "_obstack_")


def _read(path: Path, fh) -> ElfInfo:
    elf = ELFFile(fh)
    interp = soname = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
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
                elif t == "DT_RPATH":
                    rpath.extend(tag.rpath.split(":"))
                elif t == "DT_RUNPATH":
                    runpath.extend(tag.runpath.split(":"))
                elif t == "DT_BIND_NOW" or (t == "DT_FLAGS" and tag.entry.d_val & 0x8) or \
                        (t == "DT_FLAGS_1" and tag.entry.d_val & 0x1):
                    bind_now = True
        elif sec["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM"):
            symbols.update(sym.name for sym in sec.iter_symbols() if sym.name.startswith("__") and
                           sym.name.endswith("_chk") or sym.name == "__stack_chk_fail" or
                           sym.name.startswith(LINKED_IN))
    return ElfInfo(Path(path), interp, tuple(needed), tuple(rpath), not has_dynamic, soname, bind_now, relro,
                   frozenset(symbols), tuple(runpath))


def has_symbol_table(path: Path) -> bool:
    """Whether the ELF file keeps a .symtab (a stripped file, or one tcc wrote, does not)."""
    with open(path, "rb") as fh:
        return ELFFile(fh).get_section_by_name(".symtab") is not None


# A RUNPATH may name a package's own library directory under /usr/lib (systemd's
# /usr/lib/systemd, where libsystemd-shared lives), nothing else: no $ORIGIN, nothing relative,
# no build or host directory. DT_RPATH, which outranks LD_LIBRARY_PATH, never.
PRIVATE_LIBDIR = re.compile(r"^/usr/lib/[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*$")


def violations(info: ElfInfo) -> list[tuple[str, str]]:
    """How an ELF file breaks the rules of a musl root, as (rule, problem): `musl-or-static` (no
    glibc or GCC library NEEDED, musl's interpreter or none) and `no-rpath` (see PRIVATE_LIBDIR)."""
    out = []
    glibc = [n for n in info.needed if GLIBC_LIBS.match(n)]
    if glibc:
        out.append(("musl-or-static", f"needs {', '.join(glibc)}"))
    if info.interpreter not in (None, MUSL_INTERP):
        out.append(("musl-or-static", f"interpreter {info.interpreter}"))
    if info.rpath:
        out.append(("no-rpath", f"RPATH {':'.join(info.rpath)}"))
    stray = [d for d in info.runpath if not PRIVATE_LIBDIR.match(d) or "/../" in f"{d}/" or "/./" in f"{d}/"]
    if stray:
        out.append(("no-rpath", f"RUNPATH {':'.join(stray)} (only a library directory under /usr/lib may be named)"))
    return out


__all__ = ["ElfInfo", "GLIBC_LIBS", "MUSL_INTERP", "archive_info", "elf_info", "has_symbol_table", "host_paths_in", "is_archive",
           "is_elf", "violations"]
