import hashlib
import io
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from serpentlib.build import archive as archive_mod
from serpentlib.build.archive import HAS_FILTERS
from serpentlib.errors import PatchError, SourceError, UnsafeArchiveError
from serpentlib.build.recipes import Source
from serpentlib.build.sandbox import Sandbox
from serpentlib.build.sources import SourceStore, apply_patches, extract
from serpentlib.hashes import sha256_file as sha256_of

from .conftest import ROOT


def make_tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """members: (kind, name, data-or-linktarget) with kind in file|dir|sym|hard."""
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                raw = data.encode()
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.linkname = data
            tar.addfile(info)
    return path


@pytest.fixture
def tarball(tmp_path):
    path = make_tar(tmp_path / "hello-1.0.tar.gz", [("dir", "hello-1.0", ""), ("file", "hello-1.0/README", "hi\n"),
                                                    ("file", "hello-1.0/src/main.c", "int main(){}\n"),
                                                    ("sym", "hello-1.0/LINK", "README")])
    return path


def source_for(path: Path, **kw) -> Source:
    return Source(url=f"file://{path}", sha256=sha256_of(path), **kw)


def test_fetch_from_local_mirror_then_from_store(tmp_path, tarball):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(tarball, mirror)
    store = SourceStore(tmp_path / "store", mirrors=[str(mirror)], upstream=False, debian=False)
    src = Source(url="http://example.invalid/hello-1.0.tar.gz", sha256=sha256_of(tarball))
    first = store.fetch(src)
    assert first.origin.startswith("mirror") and first.path == store.path_for(src.sha256)
    assert store.fetch(src).origin == "store"


def test_fetch_from_upstream_url(tmp_path, tarball):
    store = SourceStore(tmp_path / "store", upstream=True, debian=False)
    got = store.fetch(source_for(tarball))
    assert got.origin.startswith("upstream") and sha256_of(got.path) == sha256_of(tarball)


def test_tampered_store_file_is_refused_named_and_recovered(tmp_path, tarball, caplog):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(tarball, mirror)
    store = SourceStore(tmp_path / "store", mirrors=[str(mirror)], upstream=False, debian=False)
    src = Source(url="http://example.invalid/hello-1.0.tar.gz", sha256=sha256_of(tarball))
    path = store.fetch(src).path
    path.write_bytes(path.read_bytes() + b"tampered")
    bad = hashlib.sha256(path.read_bytes()).hexdigest()
    got = store.fetch(src)  # the bad copy is refused and removed, the mirror's is taken
    assert got.origin.startswith("mirror") and sha256_of(got.path) == src.sha256
    assert src.sha256 in caplog.text and bad in caplog.text and "hello-1.0.tar.gz" in caplog.text


def test_tampered_mirror_file_is_refused_with_both_hashes(tmp_path, tarball):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    good = sha256_of(tarball)
    (mirror / tarball.name).write_bytes(tarball.read_bytes() + b"x")
    bad = sha256_of(mirror / tarball.name)
    store = SourceStore(tmp_path / "store", mirrors=[str(mirror)], upstream=False, debian=False)
    with pytest.raises(SourceError) as err:
        store.fetch(Source(url="http://example.invalid/hello-1.0.tar.gz", sha256=good))
    msg = str(err.value)
    assert good in msg and bad in msg and str(mirror / tarball.name) in msg
    assert not store.path_for(good).exists()
    assert (mirror / tarball.name).exists(), "a mirror's file is the user's: it is reported, not deleted"
    shutil.copy(tarball, mirror)  # a good copy appears: the next fetch recovers
    assert sha256_of(store.fetch(Source(url="http://example.invalid/x", sha256=good, file=tarball.name)).path) == good


def test_checksum_error_removes_downloaded_file(tmp_path, tarball):
    store = SourceStore(tmp_path / "store", upstream=True, debian=False)
    wrong = "ab" * 32
    with pytest.raises(SourceError, match=wrong):
        store.fetch(Source(url=f"file://{tarball}", sha256=wrong))
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*"))


def test_missing_source_says_where_it_looked(tmp_path):
    store = SourceStore(tmp_path / "store", mirrors=[str(tmp_path)], upstream=True, debian=False)
    with pytest.raises(SourceError) as err:
        store.fetch(Source(url=f"file://{tmp_path}/nope.tar.gz", sha256="ab" * 32))
    assert "nope.tar.gz" in str(err.value) and "mirror" in str(err.value) and "upstream" in str(err.value)


def test_repacked_source_skips_upstream(tmp_path, tarball):
    store = SourceStore(tmp_path / "store", upstream=True, debian=False)
    with pytest.raises(SourceError) as err:
        store.fetch(source_for(tarball, repacked=True))
    assert "upstream" not in str(err.value).split("could not be had")[1]


def test_extract_strips_top_and_keeps_links(tmp_path, tarball):
    out = extract(tarball, tmp_path / "src")
    assert (out / "README").read_text() == "hi\n"
    assert os.readlink(out / "LINK") == "README"
    only = extract(tarball, tmp_path / "only", only=["src"])
    assert [p.name for p in only.iterdir()] == ["src"]


@pytest.mark.parametrize("members, what", [
    ([("file", "/etc/evil", "x")], "absolute path"),
    ([("file", "top/../../evil", "x")], "contains '..'"),
    ([("dir", "top", ""), ("sym", "top/link", "../../etc")], "leads out of the tree"),
    ([("dir", "top", ""), ("sym", "top/abs", "/etc/passwd")], "leads out of the tree"),
    ([("dir", "top", ""), ("hard", "top/hard", "../etc/passwd")], "contains|leads out"),
])
def test_unsafe_tarballs_are_refused_and_leave_nothing(tmp_path, members, what):
    bad = make_tar(tmp_path / "bad.tar.gz", [("file", "top/ok.txt", "fine")] + members)
    with pytest.raises(UnsafeArchiveError, match=what):
        extract(bad, tmp_path / "src")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"], "nothing is left behind"
    assert not Path("/etc/evil").exists()


def make_special_tar(path: Path, members: list[tuple[str, str, str, int]]) -> Path:
    """members: (kind, name, data-or-linktarget, mode), kind as make_tar's or chr|fifo."""
    types = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
             "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "file":
                info.size = len(data.encode())
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type, info.linkname = types[kind], data
            tar.addfile(info)
    return path


def filter_python() -> str | None:
    """A Python whose tarfile has extraction filters: this one, $SERPENT_FILTER_PYTHON, or another
    on PATH or in ~/.pyenv."""
    if HAS_FILTERS:
        return sys.executable
    candidates = [os.environ.get("SERPENT_FILTER_PYTHON"), shutil.which("python3.13"), shutil.which("python3.12"),
                  *sorted(map(str, Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python3")))]
    for found in candidates:
        if found and subprocess.run([found, "-c", "import tarfile; tarfile.data_filter"],
                                    capture_output=True).returncode == 0:
            return found
    return None


def extract_by(how: str, archive: Path, dest: Path) -> None:
    """Extract with the `data` filter (in a Python that has it) or with our own containment."""
    if how == "fallback":
        archive_mod.extract(archive, dest, filtered=False)
        return
    python = filter_python()
    if python is None:
        pytest.skip("no Python with tarfile extraction filters here")
    code = ("import json, sys\nfrom serpentlib.build.archive import extract\n"
            "try:\n    extract(sys.argv[1], sys.argv[2], filtered=True)\n    print(json.dumps(None))\n"
            "except Exception as exc:\n    print(json.dumps([type(exc).__name__, str(exc)]))\n")
    proc = subprocess.run([python, "-c", code, str(archive), str(dest)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    error = json.loads(proc.stdout)
    if error:
        assert error[0] == "UnsafeArchiveError", error
        raise UnsafeArchiveError(error[1])


ESCAPES = {
    "chain of links": [("dir", "top", ""), ("sym", "top/s", "."), ("sym", "top/s/x", ".."),
                       ("file", "top/x/ESCAPED", "out")],
    "link made to escape by a later link": [("sym", "top/a", "b/c/../../ESCAPED"), ("sym", "top/b", ".")],
    "absolute link": [("sym", "top/abs", "/etc/passwd")],
    "dot-dot link": [("sym", "top/up", "../../ESCAPED")],
    "hard link out": [("hard", "top/hard", "../etc/passwd")],
    "absolute hard link": [("hard", "top/hard", "/etc/passwd")],
    "character device": [("chr", "top/null", "")],
    "fifo": [("fifo", "top/fifo", "")],
    # A device that strip or `extract:` would leave out, and a hard link to it: Python's tarfile
    # then extracts the device for the link (a block device reached the source store so).
    "device stripped away, then linked": [("blk", "loop0", ""), ("hard", "top/disk", "loop0")],
    "device outside the subset, then linked": [("blk", "other/loop0", ""), ("hard", "top/disk", "other/loop0")],
    "hard link to a member left out": [("file", "secret", "x"), ("hard", "top/copy", "secret")],
    "hard link to a link": [("sym", "top/s", "ok.txt"), ("hard", "top/h", "top/s")],
}


@pytest.mark.parametrize("how", ["default", "filter", "fallback"])
@pytest.mark.parametrize("case", ESCAPES)
def test_nothing_escapes_and_a_refusal_leaves_nothing(tmp_path, case, how):
    work = tmp_path / "work"
    work.mkdir()
    bad = make_special_tar(tmp_path / "bad.tar.gz", [("file", "top/ok.txt", "fine", 0o644)] +
                           [(k, n, d, 0o644) for k, n, d in ESCAPES[case]])
    with pytest.raises(UnsafeArchiveError, match="out of the tree|outside|device|fifo|special|no regular file"):
        if how == "default":
            extract(bad, work / "src", only=["top"] if "subset" in case else ())
        else:
            extract_by(how, bad, work / "src")
    assert list(work.iterdir()) == [], "a refused archive leaves nothing, beside the tree or in it"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "work"]


@pytest.mark.parametrize("how", ["default", "filter", "fallback"])
def test_setuid_and_writable_bits_are_dropped(tmp_path, how):
    ok = make_special_tar(tmp_path / "modes.tar.gz", [
        ("dir", "top", "", 0o755), ("dir", "top/shared", "", 0o3777), ("file", "top/suid", "x", 0o4755),
        ("file", "top/sgid", "x", 0o2711), ("file", "top/open", "x", 0o666), ("file", "top/read-only", "x", 0o444),
        ("sym", "top/s", ".", 0o777),
        ("file", "top/s/via-link", "inside", 0o644)])
    if how == "default":
        extract(ok, tmp_path / "src")
    else:
        extract_by(how, ok, tmp_path / "src")
    tree = tmp_path / "src"
    for name in ("shared", "suid", "sgid", "open"):
        mode = (tree / name).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH), (name, oct(mode))
    assert {name: (tree / name).stat().st_mode & 0o7777 for name in ("suid", "sgid", "open", "read-only", "shared")} \
        == {"suid": 0o755, "sgid": 0o711, "open": 0o644, "read-only": 0o644, "shared": 0o755}, "as the data filter makes them"
    assert (tree / "via-link").read_text() == "inside" and os.readlink(tree / "s") == "."


def test_extract_subset_that_does_not_exist_is_an_error(tmp_path, tarball):
    with pytest.raises(SourceError, match="no nothere inside"):
        extract(tarball, tmp_path / "src", only=["nothere"])


def test_patches_apply_and_a_bad_patch_is_named(tmp_path, tarball):
    tree = extract(tarball, tmp_path / "src")
    good = tmp_path / "0001-good.patch"
    good.write_text("Origin: serpentlib\nUpstream-Status: inappropriate\n---\n"
                    "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hi\n+hello\n")
    log = tmp_path / "patch.log"
    assert apply_patches([good], tree, Sandbox(), log) == ["0001-good.patch"]
    assert (tree / "README").read_text() == "hello\n"
    with pytest.raises(PatchError, match="0001-good.patch does not apply(.|\n)*Reversed"):
        apply_patches([good], tree, Sandbox(), log)


@pytest.mark.build
def test_debian_source_archive_fallback(tmp_path, root_required):
    """The real thing: musl's orig tarball from Debian's source archive, picked by sha256, read
    through stage 0's apt."""
    from serpentlib.build.profile import load_profile
    from serpentlib.build.seed import ensure

    seed = ensure(load_profile("mini").common["seed"])
    store = SourceStore(tmp_path / "store", upstream=False, debian=True, seed=seed)
    sha = "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4"
    got = store.fetch(Source(url="https://musl.libc.org/releases/musl-1.2.3.tar.gz", sha256=sha, debian="musl"))
    assert got.origin.startswith("debian") and sha256_of(got.path) == sha


def test_unpacked_tree_is_extracted_once_and_reused(tmp_path, tarball):
    store = SourceStore(tmp_path / "store", upstream=True, debian=False)
    src = source_for(tarball)
    got = store.fetch(src)
    tree = store.unpacked(got, src)
    assert (tree / "README").read_text() == "hi\n"
    inode = (tree / "README").stat().st_ino
    assert store.unpacked(got, src) == tree and (tree / "README").stat().st_ino == inode, "not extracted again"
    other = store.unpacked(got, source_for(tarball, extract=("src",)))
    assert other != tree and [p.name for p in other.iterdir()] == ["src"]


@pytest.mark.parametrize("change", ["edit", "add", "remove", "no record"])
def test_an_unpacked_tree_changed_afterwards_is_extracted_again(tmp_path, tarball, caplog, change):
    store = SourceStore(tmp_path / "store", upstream=True, debian=False)
    src = source_for(tarball)
    got = store.fetch(src)
    tree = store.unpacked(got, src)
    if change == "edit":
        (tree / "README").write_text("hx\n")  # same size
    elif change == "add":
        (tree / "src" / "extra.c").write_text("")
    elif change == "remove":
        (tree / "LINK").unlink()
    else:  # a tree left by an older serpentlib, without its recorded hash
        for record in (store.root / "trees").glob("*.sha256"):
            record.unlink()
    with caplog.at_level("WARNING"):
        assert store.unpacked(got, src) == tree
    assert "extracting it again" in caplog.text
    assert (tree / "README").read_text() == "hi\n" and os.readlink(tree / "LINK") == "README"
    assert not (tree / "src" / "extra.c").exists()


def _unpack_and_count(store_root: str, tarball: str, barrier) -> tuple[int, str]:
    store = SourceStore(Path(store_root), upstream=True, debian=False)
    src = source_for(Path(tarball))
    got = store.fetch(src)
    barrier.wait()
    tree = store.unpacked(got, src)
    files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    return len(files), hashlib.sha256("\n".join(files).encode()).hexdigest()


def test_concurrent_runs_unpacking_one_source_each_get_the_whole_tree(tmp_path):
    """Four processes unpack one real tarball at the same moment: each sees the complete tree,
    and no temporary folder is left."""
    members = [("dir", "big-1.0", "")] + [("file", f"big-1.0/d{i % 20}/f{i}.c", f"int f{i};\n" * 50)
                                          for i in range(3000)]
    tarball = make_tar(tmp_path / "big-1.0.tar.gz", members)
    store = tmp_path / "store"
    SourceStore(store, upstream=True, debian=False).fetch(source_for(tarball))
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(4)
    with ctx.Pool(4) as pool:
        results = pool.starmap(_unpack_and_count, [(str(store), str(tarball), barrier)] * 4)
    assert {count for count, _ in results} == {3000}
    assert len({digest for _, digest in results}) == 1
    left = [p.name for p in (store / "trees").iterdir() if not p.name.endswith((".sha256", ".lock"))]
    assert len(left) == 1, f"only the tree itself is left: {left}"


def test_tree_size_counts_bytes_files_and_elf(tmp_path):
    from serpentlib.build.phases import tree_size
    (tmp_path / "a").write_bytes(b"\x7fELF" + b"\0" * 6)
    (tmp_path / "b").write_text("text")
    (tmp_path / "link").symlink_to("a")
    assert tree_size(tmp_path) == (14, 2, 1)
    assert tree_size(tmp_path, count_elf=False) == (14, 2, 0)
