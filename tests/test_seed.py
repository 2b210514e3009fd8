"""Stage 0: the seed's recipe, its mirror, its verification, and how records tell seeds apart."""

import json
import shutil
import subprocess

import pandas as pd
import pytest

from serpentlib.records.compare import RunRecords, seed_difference
from serpentlib.build.profile import load_profile
from serpentlib.hashes import SOURCE_DATE_EPOCH
from serpentlib.build.seed import FILES, Seed, SeedError, SeedSpec, debian_mirror, ensure, verify


def test_a_seed_block_without_suite_or_packages_is_a_clear_error():
    with pytest.raises(SeedError, match="seed block is not valid(.|\n)*suite: bookworm"):
        SeedSpec.from_params({"suite": "bookworm"})
    with pytest.raises(SeedError, match="not valid"):
        SeedSpec.from_params({"suite": "bookworm", "packages": ["clang"], "mirrorz": "x"})


def test_no_mirror_anywhere_says_how_to_name_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SERPENT_DEBIAN_MIRROR", raising=False)
    spec = SeedSpec.from_params({"suite": "bookworm", "packages": ["clang"]})
    with pytest.raises(SeedError, match="no Debian mirror(.|\n)*SERPENT_DEBIAN_MIRROR"):
        debian_mirror(spec, tmp_path)  # an /etc/apt with nothing in it
    monkeypatch.setenv("SERPENT_DEBIAN_MIRROR", "http://env.invalid/debian")
    assert debian_mirror(spec, tmp_path) == "http://env.invalid/debian"
    assert debian_mirror(SeedSpec("bookworm", ("clang",), mirror="http://p.invalid/debian"), tmp_path) == \
        "http://p.invalid/debian"


def runs(seed_a: dict, seed_b: dict) -> tuple[RunRecords, RunRecords]:
    empty = pd.DataFrame()
    return (RunRecords("a", empty, empty, empty, info={"seed": seed_a}),
            RunRecords("b", empty, empty, empty, info={"seed": seed_b}))


def test_compare_says_when_two_runs_were_seeded_differently():
    a = {"suite": "bookworm", "key": "k1", "packages_digest": "d1", "versions": {"clang-14": "1:14.0.6-12"}}
    assert seed_difference(*runs(a, dict(a))) == ""
    b = {**a, "packages_digest": "d2", "versions": {"clang-14": "1:14.0.6-13"}}
    assert seed_difference(*runs(a, b)) == "seeded differently: clang-14 1:14.0.6-12 -> 1:14.0.6-13"
    c = {**a, "suite": "trixie", "key": "k2", "packages_digest": "d3"}
    assert "suite bookworm -> trixie" in seed_difference(*runs(a, c)) and "seed k1 -> k2" in seed_difference(*runs(a, c))
    assert seed_difference(*runs(a, {})) == "only one run records its seed (stage 0)"


@pytest.mark.build
def test_a_changed_or_added_file_in_the_seed_is_found_and_named(tmp_path, root_required):
    """The real seed, seen through an overlay so the test can change it without harm: a changed
    program, and files no package owns (an /etc/ld.so.preload and the library it names, which the
    seed's clang would then run) fail the thorough check, each named; a removed package fails the
    package-list check."""
    seed = ensure(load_profile("mini").common["seed"])
    for d in ("upper", "work", "view/root"):
        (tmp_path / d).mkdir(parents=True)
    view = tmp_path / "view"
    shutil.copy(seed.dir / FILES, view / FILES)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={seed.root},upperdir={tmp_path / 'upper'},"
                    f"workdir={tmp_path / 'work'}", str(view / "root")], check=True)
    try:
        copy = Seed(seed.spec, view, json.loads((seed.dir / "manifest.json").read_text()))
        verify(copy, thorough=True)  # as made: passes
        with open(view / "root/usr/bin/make", "ab") as fh:
            fh.write(b"\0")
        (view / "root/etc/ld.so.preload").write_text("/usr/lib/x86_64-linux-gnu/libinjected.so\n")
        (view / "root/usr/lib/x86_64-linux-gnu/libinjected.so").write_bytes(b"\x7fELF injected")
        with pytest.raises(SeedError) as found:
            verify(copy, thorough=True)
        said = str(found.value)
        assert "differs from the list of its files taken when it was made (3)" in said and "--recreate" in said
        for line in ("/etc/ld.so.preload: extra", "/usr/bin/make: changed",
                     "/usr/lib/x86_64-linux-gnu/libinjected.so: extra"):
            assert line in said, said
        copy.manifest["packages"] = {**copy.manifest["packages"], "clang-14": "0.0-1"}
        with pytest.raises(SeedError, match="packages differ from its manifest: clang-14 0.0-1 -> 1:14"):
            verify(copy)
    finally:
        subprocess.run(["umount", str(view / "root")], check=True)
    verify(seed, thorough=True)  # the seed itself was never touched


def test_the_seed_carries_the_fixed_date_not_the_day_it_was_made():
    """/etc/shadow holds the day each account's password last changed: the seed's say the fixed
    date, so two seeds made on either side of midnight are the same file by file."""
    seed = ensure(load_profile("mini").common["seed"])
    days = {line.split(":")[2] for line in (seed.root / "etc/shadow").read_text().splitlines()}
    assert days == {str(int(SOURCE_DATE_EPOCH) // 86400)}, f"{seed.root / 'etc/shadow'}: days {sorted(days)}"


def test_a_users_seed_tarball_is_unpacked_as_its_own_files_and_through_no_link(tmp_path):
    """mmdebstrap's tarball holds `.`, devices (left out) and, were it hostile, a link then a member
    through it (refused: nothing lands outside the root)."""
    import io
    import tarfile

    from serpentlib.build.seed import unpack_root

    def tarball(name, members):
        path = tmp_path / name
        with tarfile.open(path, "w") as tar:
            for member_name, kind, extra in members:
                info = tarfile.TarInfo(member_name)
                if kind == "dir":
                    info.type, info.mode = tarfile.DIRTYPE, extra
                    tar.addfile(info)
                elif kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, extra
                    tar.addfile(info)
                elif kind == "chr":
                    info.type = tarfile.CHRTYPE
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(extra), 0o644
                    tar.addfile(info, io.BytesIO(extra))
        return path

    good = tarball("good.tar", [(".", "dir", 0o755), ("./etc", "dir", 0o755), ("./etc/hostname", "file", b"seed\n"),
                                ("./dev", "dir", 0o755), ("./dev/null", "chr", None), ("./root", "dir", 0o700)])
    unpack_root(good, tmp_path / "root")
    assert (tmp_path / "root/etc/hostname").read_text() == "seed\n" and not (tmp_path / "root/dev/null").exists()
    assert (tmp_path / "root/root").stat().st_mode & 0o777 == 0o700
    (tmp_path / "outside").mkdir()
    bad = tarball("bad.tar", [(".", "dir", 0o755), ("./x", "link", str(tmp_path / "outside")),
                              ("./x/planted", "file", b"evil\n")])
    with pytest.raises(SeedError, match="'./x/planted' would be written outside the root through a link"):
        unpack_root(bad, tmp_path / "root2")
    assert list((tmp_path / "outside").iterdir()) == []
