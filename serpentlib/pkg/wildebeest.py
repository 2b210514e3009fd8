"""Which parts of libwildebeest a package holds: the library is static, so the functions a
package uses are linked into its files, by name (nothing is stripped). The forced header's
macros (strndupa, comparison_fn_t, getdents64) leave no function behind and are not counted."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..elf import elf_info, has_symbol_table, is_elf

# A function of the library -> the part (header) it belongs to.
PARTS = {
    "wildebeest_parse_printf_format": "printf.h",
    "wildebeest_glob": "glob.h",
    "wildebeest_globfree": "glob.h",
    "wildebeest_strerror_r": "wildebeest.h (strerror_r)",
    "wildebeest_getsgnam_r": "gshadow.h",
}


def part_of(symbol: str) -> str | None:
    return "obstack.h" if symbol.startswith("_obstack_") else PARTS.get(symbol)


def parts_used(files: Iterable[Path]) -> list[str] | None:
    """The parts of libwildebeest whose functions are in `files` (those that are ELF); None when
    no ELF file among them keeps a symbol table (tcc writes none), so none can be read."""
    found: set[str] = set()
    readable = False
    for path in files:
        if path.is_file() and not path.is_symlink() and is_elf(path):
            readable = readable or has_symbol_table(path)
            found.update(filter(None, (part_of(s) for s in elf_info(path).symbols)))
    return sorted(found) if readable or found else None
