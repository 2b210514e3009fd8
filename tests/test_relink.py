"""The relink's bookkeeping, on small trees: what the second pass replaced, and what it would leave
behind (the lane test builds the real one)."""

import shutil

from serpentlib.build.recipes import load_recipe
from serpentlib.stages.relink import compare_passes

from .conftest import ROOT

ELF = "/bin/true"


def tree(base, files):
    for rel, content in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "elf":
            shutil.copy(ELF, path)
        else:
            path.write_text(content)
    return base


def test_a_second_pass_that_replaces_everything_passes_and_says_what_it_added(tmp_path):
    first = tree(tmp_path / "one", {"usr/lib/liba.so.1": "elf", "usr/share/a.txt": "a"})
    second = tree(tmp_path / "two", {"usr/lib/liba.so.1": "elf", "usr/share/a.txt": "a", "usr/bin/tool": "elf"})
    root = tree(tmp_path / "root", {"usr/lib/liba.so.1": "elf", "usr/share/a.txt": "a", "usr/bin/tool": "elf"})
    record = compare_passes("t", "pkg", first, second, root)
    assert record.passed, record.detail
    assert "installed 3 files, 1 more than the first" in record.detail
    assert "0 changed and 1 are the same bytes" in record.detail and "added ELF files: usr/bin/tool" in record.detail


def test_a_first_pass_file_left_behind_or_overwritten_fails_naming_it(tmp_path):
    first = tree(tmp_path / "one", {"usr/lib/liba.so.1": "elf", "usr/lib/old.so": "elf"})
    second = tree(tmp_path / "two", {"usr/lib/liba.so.1": "elf"})
    root = tree(tmp_path / "root", {"usr/lib/liba.so.1": "not the second pass's", "usr/lib/old.so": "elf"})
    record = compare_passes("t", "pkg", first, second, root)
    assert not record.passed
    assert "left behind (the second has none of them): usr/lib/old.so" in record.detail
    assert "does not hold as it made them: usr/lib/liba.so.1" in record.detail


def test_the_relinked_recipe_is_its_own_build_with_its_overrides():
    recipe = load_recipe(ROOT / "recipes" / "util-linux" / "recipe.yaml")
    again = recipe.relinked()
    assert again.name == "util-linux-relink" and again.sources == recipe.sources
    assert "--without-systemd" in recipe.build_for("stage3").env["PASS"]
    assert "--with-systemd" in again.build_for("stage3").env["PASS"]
    # the cross build keeps its stage's variables under the relink's
    assert again.build_for("lane").env["CROSS"] == recipe.build_for("lane").env["CROSS"]


def test_a_relink_of_a_package_the_stage_does_not_build_is_refused_before_anything_builds(tmp_path):
    from .conftest import serpent

    proc = serpent("lane", "--work-dir", str(tmp_path / "work"), "--run-dir", str(tmp_path / "run"),
                   "--relink", "libcap", "expat", db=tmp_path / "m.sqlite")
    assert proc.returncode != 0
    assert "relink names ['libcap'], which the stage does not build" in proc.stderr, proc.stderr
    assert not (tmp_path / "work").exists()  # refused before the stage began: nothing made
