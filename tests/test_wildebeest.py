"""libwildebeest on the host: its test suite with the host's compiler (strict warnings, and under
ASan/UBSan), its install layout, and the recipes that use it. No bootstrap needed."""

import re
import shutil
import subprocess

import pytest

from serpentlib.build.recipes import load_recipe

from .conftest import ROOT, have

SRC = ROOT / "recipes" / "libwildebeest" / "src"
STRICT = "-O2 -std=c99 -pedantic -Wall -Wextra -Werror"


def make(tree, *args, **env):
    proc = subprocess.run(["make", "-C", str(tree), *args, *(f"{k}={v}" for k, v in {"CC": "clang", **env}.items())],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def tree(tmp_path):
    if not (have("make") and have("clang")):
        pytest.skip("needs make and a C compiler")
    return shutil.copytree(SRC, tmp_path / "src")


# Each suite and the fewest checks it makes on a glibc host (where each result is also asked of glibc).
SUITES = {"obstack-test": 100, "printf-test": 150, "strerror-test": 30, "header-test": 11, "glob-test": 40,
          "gshadow-test": 8}


@pytest.mark.parametrize("cflags", [STRICT, "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all"],
                         ids=["strict", "sanitizers"])
def test_suites_pass(tree, cflags):
    """obstack; parse_printf_format, GNU strerror_r and glob, each compared with the host glibc's own;
    the forced header's macros."""
    if "sanitize" in cflags:
        probe = subprocess.run(["clang", "-fsanitize=address,undefined", "-x", "c", "-o", str(tree / "probe"), "-"],
                               input="int main(void){return 0;}", capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip("the host compiler cannot link ASan/UBSan")
    # The suites other than obstack's are C99 with GNU extensions (statement expressions, as systemd).
    out = make(tree, "check", CFLAGS=cflags.replace("-std=c99 -pedantic", "-std=gnu99"))
    for suite, least in SUITES.items():
        passed = re.search(rf"{suite}: (\d+) passed, 0 failed", out)
        assert passed and int(passed.group(1)) >= least, (suite, out)


def test_printf_suite_fails_on_a_parse_that_drops_a_size(tree):
    """The table and glibc both catch the bug Serpent's 2020 parse_printf_format had (a size
    modifier dropped): `%lld` read as a plain int."""
    source = tree / "printf.c"
    text = source.read_text()
    assert "is_long = 1;" in text
    source.write_text(text.replace("is_long = 1;", "is_long = 0;", 1))
    proc = subprocess.run(["make", "-C", str(tree), "check", "CC=clang"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'FAIL table: "%ld"' in proc.stdout and 'FAIL glibc: "%ld"' in proc.stdout, proc.stdout


def test_header_suits_c89_programs(tree, tmp_path):
    """Old programs (anacron is one) are C89: the header must not need more."""
    make(tree, "libwildebeest.a", CFLAGS=STRICT)
    prog = tmp_path / "old.c"
    prog.write_text("#include <stdlib.h>\n#include <obstack.h>\n"
                    "#define obstack_chunk_alloc malloc\n#define obstack_chunk_free free\n"
                    "int main(void) { struct obstack o; char *s; obstack_init(&o);\n"
                    "  obstack_grow0(&o, \"abc\", 3); s = obstack_finish(&o);\n"
                    "  obstack_free(&o, NULL); return s == NULL; }\n")
    proc = subprocess.run(["clang", "-std=c89", "-pedantic", "-Wall", "-Werror", f"-I{tree / 'include'}",
                           "-o", str(tmp_path / "old"), str(prog), f"-L{tree}", "-lwildebeest"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(tmp_path / "old")]).returncode == 0


def test_install_layout_and_pkg_config(tree, tmp_path):
    dest = tmp_path / "dest"
    make(tree, "install", DESTDIR=dest, PREFIX="/usr")
    installed = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert installed == ["usr/include/wildebeest/glob.h", "usr/include/wildebeest/gshadow.h",
                         "usr/include/wildebeest/obstack.h", "usr/include/wildebeest/printf.h",
                         "usr/include/wildebeest/wildebeest.h", "usr/lib/libwildebeest.a",
                         "usr/lib/pkgconfig/wildebeest.pc"]
    pc = (dest / "usr/lib/pkgconfig/wildebeest.pc").read_text()
    version = load_recipe(ROOT / "recipes" / "libwildebeest" / "recipe.yaml").version
    assert f"Version: {version}\n" in pc, "the Makefile's VERSION and the recipe's differ"
    assert "prefix=/usr\n" in pc and "Cflags: -I${includedir}/wildebeest -include wildebeest.h\n" in pc
    assert "Libs: -L${libdir} -lwildebeest\n" in pc
    if have("pkg-config"):
        flags = subprocess.run(["pkg-config", "--define-prefix", "--cflags", "--libs", "wildebeest"],
                               env={"PKG_CONFIG_PATH": str(dest / "usr/lib/pkgconfig")},
                               capture_output=True, text=True)
        assert flags.returncode == 0 and "-lwildebeest" in flags.stdout, flags.stderr


def test_the_source_tree_holds_no_build_output():
    """The folder is hashed into the build key: objects left in it would change the key."""
    leftovers = [p.name for p in SRC.rglob("*") if p.suffix in (".o", ".a", ".pc") or p.name == "obstack-test"]
    assert leftovers == []


def test_anacron_is_built_against_libwildebeest():
    anacron = load_recipe(ROOT / "recipes" / "anacron" / "recipe.yaml")
    wildebeest = load_recipe(ROOT / "recipes" / "libwildebeest" / "recipe.yaml")
    assert "libwildebeest" in anacron.depends
    assert wildebeest.source_dir == SRC and wildebeest.sources == ()
    build = anacron.build_for("stage3")
    assert build.env["WILDEBEEST_CFLAGS"] == "-I/usr/include/wildebeest"
    assert "$WILDEBEEST_CFLAGS" in build.build and "$WILDEBEEST_LIBS" in build.build


def test_the_parts_a_package_uses_are_read_from_its_files(tree, tmp_path):
    """Static: what a program uses of the library is linked into it, by name; the forced header's
    macros leave nothing (stage 4 records the parts per package, the SBOM says them)."""
    from serpentlib.pkg.wildebeest import parts_used

    make(tree, "libwildebeest.a", CFLAGS="-O2")
    prog = tmp_path / "prog.c"
    prog.write_text("#include <glob.h>\n#include <printf.h>\n"
                    "int main(int argc, char **argv) { glob_t g = {0}; int t[4]; (void)argc;\n"
                    "  char *s = strndupa(argv[0], 3);\n"
                    "  return (int)parse_printf_format(s, 4, t) + glob(\"/nonexistent*\", 0, NULL, &g); }\n")
    out = tmp_path / "prog"
    proc = subprocess.run(["clang", "-O2", f"-I{tree / 'include'}", "-include", "wildebeest.h", "-o", str(out), str(prog),
                           f"-L{tree}", "-lwildebeest"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert parts_used([out, prog]) == ["glob.h", "printf.h"]
    subprocess.run(["llvm-strip" if have("llvm-strip") else "strip", str(out)], check=True)
    assert parts_used([out]) is None  # stripped: nothing to read them from, and it says so
