"""Hostile packages: a package file whose paths leave the root, or whose tar differs from its
manifest, is refused before the root is touched, naming the package and the path."""

import hashlib
import io
import os
import tarfile

import pytest

from serpentlib.pkg.installer import Root
from serpentlib.pkg.package import MANIFEST, FileEntry, Manifest, PackageError
from serpentlib.pkg.repo import Repository, write_index

from .test_packages import repo, snapshot  # noqa: F401  (the fixture and the helper)

DATA = b"#!/bin/sh\necho evil\n"
SHA = hashlib.sha256(DATA).hexdigest()


def file_entry(path: str, mode: int = 0o755) -> FileEntry:
    return FileEntry(path, "file", mode, len(DATA), SHA)


def member(name: str, kind: str = "file", mode: int = 0o755, target: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    if kind == "file":
        info.size = len(DATA)
        return info, DATA
    info.type = {"link": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE,
                 "fifo": tarfile.FIFOTYPE}[kind]
    info.linkname = target
    return info, None


def hostile(repo_dir, files: list[FileEntry], members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Repository:
    """Add package `evil` to the repository: its manifest lists `files`, its tar holds `members`
    (the index is honest about the file: the attack is inside it)."""
    m = Manifest(name="evil", version="1.0", release=1, license="MIT", summary="hostile", files=files)
    with tarfile.open(repo_dir / m.filename, "w:xz") as tar:
        text = m.to_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    good = Repository(repo_dir)
    write_index(repo_dir, [good.manifest(n) for n in good.entries if n != "evil"] + [m])
    return Repository(repo_dir)


def outside(tmp_path):
    return tmp_path / "outside"


CASES = {
    "a path with ..": lambda t: ([file_entry("/../ESCAPED")], [member("root/../ESCAPED")], "/../ESCAPED"),
    "a path with .. further in": lambda t: ([file_entry("/usr/../../ESCAPED")], [member("root/usr/../../ESCAPED")],
                                            "/usr/../../ESCAPED"),
    "a relative path": lambda t: ([file_entry("usr/bin/evil")], [member("rootusr/bin/evil")], "usr/bin/evil"),
    "a file under the package's own link": lambda t: (
        [FileEntry("/usr/share/evil", "link", 0o777, target=str(outside(t))), file_entry("/usr/share/evil/ESCAPED")],
        [member("root/usr/share/evil", "link", 0o777, str(outside(t))), member("root/usr/share/evil/ESCAPED")],
        "/usr/share/evil/ESCAPED"),
    "a file under a link already in the root": lambda t: (
        [file_entry("/opt/ESCAPED")], [member("root/opt/ESCAPED")], "/opt/ESCAPED"),
    "a link target taken from the tar": lambda t: (
        [FileEntry("/usr/bin/evil-sh", "link", 0o777, target="hello")],
        [member("root/usr/bin/evil-sh", "link", 0o777, "/etc/shadow")], "/usr/bin/evil-sh"),
    "a file the manifest lacks": lambda t: (
        [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil"), member("root/usr/bin/stowaway")],
        "/usr/bin/stowaway"),
    "a file the tar lacks": lambda t: (
        [file_entry("/usr/bin/evil"), file_entry("/usr/bin/ghost")], [member("root/usr/bin/evil")], "/usr/bin/ghost"),
    "a member twice": lambda t: (
        [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil"), member("root/usr/bin/evil")], "/usr/bin/evil"),
    "a hard link for a file": lambda t: (
        [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil", "hard", 0o755, "root/usr/bin/hello")],
        "/usr/bin/evil"),
    "a symlink for a file": lambda t: (
        [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil", "link", 0o777, "/etc/shadow")], "/usr/bin/evil"),
    "a fifo for a file": lambda t: ([file_entry("/usr/bin/evil")], [member("root/usr/bin/evil", "fifo")],
                                    "/usr/bin/evil"),
    "a setuid bit the manifest lacks": lambda t: (
        [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil", mode=0o4755)], "/usr/bin/evil"),
    "a directory mode the manifest lacks": lambda t: (
        [FileEntry("/var/spool/evil", "dir", 0o755)], [member("root/var/spool/evil", "dir", 0o777)],
        "/var/spool/evil"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_package_is_refused_and_the_root_is_untouched(tmp_path, repo, case):  # noqa: F811
    outside(tmp_path).mkdir()
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    root.install(repo, ["base"])
    os.symlink(outside(tmp_path), tmp_path / "root/opt")  # a link into the host, as a careless admin might leave
    files, members, path = CASES[case](tmp_path)
    evil = hostile(repo.path, files, members)
    before, around = snapshot(tmp_path / "root"), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(PackageError) as err:
        root.install(evil, ["evil"])
    assert "evil" in str(err.value) and path in str(err.value), str(err.value)
    assert snapshot(tmp_path / "root") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == around and list(outside(tmp_path).iterdir()) == []
    assert list(root.table()["package"]) == ["base"]


def test_an_honest_package_made_the_same_way_installs(tmp_path, repo):  # noqa: F811
    """The hostile packages above are refused for what they hold, not for how they are made."""
    (tmp_path / "root").mkdir()
    good = hostile(repo.path, [FileEntry("/usr/bin/evil-sh", "link", 0o777, target="hello"),
                               file_entry("/usr/bin/evil"), FileEntry("/var/spool/evil", "dir", 0o1777)],
                   [member("root/usr/bin/evil"), member("root/usr/bin/evil-sh", "link", 0o777, "hello"),
                    member("root/var/spool/evil", "dir", 0o1777)])
    Root(tmp_path / "root").install(good, ["evil"])
    assert (tmp_path / "root/usr/bin/evil").read_bytes() == DATA
    assert os.readlink(tmp_path / "root/usr/bin/evil-sh") == "hello"
    assert (tmp_path / "root/var/spool/evil").stat().st_mode & 0o7777 == 0o1777
