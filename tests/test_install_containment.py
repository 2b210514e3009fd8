"""Hostile packages: a package file whose paths leave the root, or whose tar differs from its
manifest, is refused before the root is touched, naming the package and the path."""

import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from serpentlib.errors import ConflictError, TrustError
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
    "a file in the installer's own state": lambda t: (
        [file_entry("/var/lib/serpent/installed/evil.json", 0o644)],
        [member("root/var/lib/serpent/installed/evil.json", mode=0o644)], "/var/lib/serpent/installed/evil.json"),
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


def test_names_in_an_index_or_a_manifest_are_package_names_not_paths(tmp_path, repo):  # noqa: F811
    """A dependency named ../../victim once made `pkg install --insecure` delete a host directory's
    files; a manifest named otherwise than its index entry moved a host file into the root."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep\n")
    honest = (repo.path / "index.json").read_text()
    index = json.loads(honest)
    index["packages"]["tool"]["depends"] = ["base", "../../../victim"]
    (repo.path / "index.json").write_text(json.dumps(index))
    with pytest.raises(PackageError, match="tool depends on: '../../../victim' is not a package name"):
        Repository(repo.path)
    assert (victim / "precious").read_text() == "keep\n"
    (repo.path / "index.json").write_text(honest)
    # An honest index entry whose package file's manifest says another name.
    (tmp_path / "root").mkdir()
    liar = hostile(repo.path, [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil")])
    data = json.loads((repo.path / "index.json").read_text())
    data["packages"]["base2"] = {**data["packages"]["evil"]}
    del data["packages"]["evil"]
    (repo.path / "index.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match="its manifest names the package 'evil', the index 'base2'"):
        Root(tmp_path / "root").install(Repository(repo.path), ["base2"], insecure=True)
    assert set(snapshot(tmp_path / "root")) <= {"var", "var/lib", "var/lib/serpent", "var/lib/serpent/lock"} and liar


def _installed_root(tmp_path, repo):  # noqa: F811
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    root.install(repo, ["base"])
    return root


def test_a_planted_installed_record_or_journal_is_refused_before_anything_acts_on_it(tmp_path, repo):  # noqa: F811
    root = _installed_root(tmp_path, repo)
    host = tmp_path / "host-file"
    host.write_text("the host's\n")
    db = tmp_path / "root" / "var/lib/serpent"
    (db / "installed" / "evil.json").write_text(Manifest(
        name="evil", version="1", release=1, license="MIT", summary="planted",
        files=[FileEntry("/../" * 8 + str(host).lstrip("/"), "file", 0o644, 1, "0" * 64)]).to_json())
    before = snapshot(tmp_path / "root")
    with pytest.raises(PackageError, match="installed record .*evil.json .* planted"):
        root.remove(["evil"])
    assert host.read_text() == "the host's\n" and snapshot(tmp_path / "root") == before
    (db / "installed" / "evil.json").unlink()
    (db / "transaction.json").write_text(json.dumps({"op": "install", "packages": ["x"], "dirs": [], "started": "now",
                                                     "paths": ["/" + "../" * 8 + str(host).lstrip("/")]}))
    with pytest.raises(PackageError, match="the journal .* not one this installer wrote"):
        with root.locked():
            pass  # `pkg list` takes the lock, which rolls a journal back first
    assert host.read_text() == "the host's\n"
    (db / "transaction.json").unlink()
    shutil.rmtree(db / "installed")
    (db / "installed").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PackageError, match="the installer's state /var/lib/serpent goes through the link"):
        root.install(repo, ["tool"])
    assert not (tmp_path / "elsewhere").exists()


def test_a_package_file_swapped_after_it_was_hashed_is_not_what_is_installed(tmp_path, repo, monkeypatch):  # noqa: F811
    """The installer installs from the copy it hashed; a file swapped in the repository between
    the hash and the unpack (an inotify race once installed it under a valid signature) is not read."""
    (tmp_path / "root").mkdir()
    evil = hostile(repo.path, [file_entry("/usr/bin/evil")], [member("root/usr/bin/evil")])
    honest = (repo.path / evil.entry("evil").file).read_bytes()
    real_fetch = Repository.fetch

    def fetch_then_swap(self, name, into):
        copy = real_fetch(self, name, into)
        (self.path / self.entry(name).file).write_bytes(b"swapped")  # as the attacker would, just after
        return copy

    monkeypatch.setattr(Repository, "fetch", fetch_then_swap)
    Root(tmp_path / "root").install(evil, ["evil"])
    assert (tmp_path / "root/usr/bin/evil").read_bytes() == DATA and honest != b"swapped"


def test_an_older_or_expired_index_is_refused_naming_both_serials(tmp_path, repo):  # noqa: F811
    root = _installed_root(tmp_path, repo)
    manifests = [repo.manifest(n) for n in repo.entries]
    write_index(repo.path, manifests, serial=2_000_000_000)
    root.install(Repository(repo.path), ["tool"])
    assert root.serial() == 2_000_000_000
    root.remove(["tool"])
    write_index(repo.path, manifests, serial=1_900_000_000)  # an older index, validly signed, served again
    with pytest.raises(TrustError, match="serial 1900000000, older than 2000000000(.|\n)*--allow-downgrade"):
        root.install(Repository(repo.path), ["tool"])
    assert "tool" not in root.installed()
    root.install(Repository(repo.path), ["tool"], allow_downgrade=True)
    root.remove(["tool"])
    write_index(repo.path, manifests, serial=1_000_000_000, valid_for=86400)
    with pytest.raises(TrustError, match="serial 1000000000\\) expired on 2001-09-10"):
        root.install(Repository(repo.path), ["tool"], allow_downgrade=True)


def test_directory_modes_are_owned_verified_and_rolled_back(tmp_path, repo):  # noqa: F811
    """A package declaring /etc 0777 once changed the filesystem package's 0755 /etc for good."""
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    root.install(repo, ["filesystem", "base"])
    loose = hostile(repo.path, [FileEntry("/etc", "dir", 0o777)], [member("root/etc", "dir", 0o777)])
    with pytest.raises(ConflictError, match="evil declares /etc mode 777, filesystem mode 755"):
        root.install(loose, ["evil"])
    assert (tmp_path / "root/etc").stat().st_mode & 0o7777 == 0o755
    (tmp_path / "root/etc").chmod(0o777)
    assert [(p.package, p.path, p.problem) for p in root.verify()] == [("filesystem", "/etc", "mode: 777 instead of 755")]
    (tmp_path / "root/etc").chmod(0o755)
    # An undeclared directory whose mode a package sets: an interrupted install puts it back.
    (tmp_path / "root/srv").mkdir(mode=0o755)
    spool = hostile(repo.path, [FileEntry("/srv", "dir", 0o750), file_entry("/srv/evil")],
                    [member("root/srv", "dir", 0o750), member("root/srv/evil")])

    def stop(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        root.install(spool, ["evil"], on_file=stop)
    assert (tmp_path / "root/srv").stat().st_mode & 0o7777 == 0o755


def test_a_kill_before_the_journal_leaves_no_staging_files_behind(tmp_path, repo):  # noqa: F811
    root = _installed_root(tmp_path, repo)
    leftover = tmp_path / "root/var/lib/serpent/staging/tool/usr/bin"
    leftover.mkdir(parents=True)
    (leftover / "tool").write_text("half\n")
    assert list(root.table()["package"]) == ["base"]
    with root.locked():
        pass
    assert not (tmp_path / "root/var/lib/serpent/staging").exists()


def test_a_disk_full_while_staging_is_a_clear_error_and_installs_nothing(tmp_path, repo, root_required):  # noqa: F811
    """The root's file system fills while the package is staged: a raw OSError once; now the error
    says so, the root is as it was and no staging file is left."""
    import subprocess

    from serpentlib.errors import DiskFullError

    big = os.urandom(3 * 2**20)  # incompressible: a 3 MiB file in a 1 MiB root
    sha = hashlib.sha256(big).hexdigest()
    m = Manifest(name="huge", version="1.0", release=1, license="MIT", summary="too big",
                 files=[FileEntry("/usr/share/huge", "file", 0o644, len(big), sha)])
    with tarfile.open(repo.path / m.filename, "w:xz", preset=0) as tar:
        text = m.to_json().encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
        info = tarfile.TarInfo("root/usr/share/huge")
        info.size, info.mode = len(big), 0o644
        tar.addfile(info, io.BytesIO(big))
    write_index(repo.path, [repo.manifest(n) for n in repo.entries] + [m])
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)], check=True)
    try:
        with pytest.raises(DiskFullError, match="no space left on the device of .* while staging huge; nothing was installed"):
            Root(root).install(Repository(repo.path), ["huge"])
        assert not (root / "var/lib/serpent/staging").exists() and not (root / "usr").exists()
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_a_planted_lock_link_in_the_installers_state_writes_nothing_through_it(tmp_path, repo):  # noqa: F811
    root = _installed_root(tmp_path, repo)
    lock = tmp_path / "root/var/lib/serpent/lock"
    lock.unlink()
    lock.symlink_to(tmp_path / "outside-file")
    with pytest.raises(PackageError, match="goes through the link /var/lib/serpent/lock"):
        root.table()
    assert not (tmp_path / "outside-file").exists()


def test_the_same_packages_keep_their_serial_and_new_ones_get_the_next(tmp_path, repo):  # noqa: F811
    from serpentlib.pkg.keys import KeyStore

    store = KeyStore(tmp_path / "keys")
    manifests = [repo.manifest(n) for n in repo.entries]
    first = json.loads(write_index(repo.path, manifests, store).read_text())
    again = json.loads(write_index(repo.path, manifests, store).read_text())
    fewer = json.loads(write_index(repo.path, manifests[:1], store).read_text())
    assert first == again, "the same packages, the same index"
    assert fewer["serial"] == first["serial"] + 1 and first["expires"] > __import__("time").time()
