"""The signed repository: `serpent pkg install` takes only an index signed by a key the root
trusts, and says which of unsigned, unknown key or bad signature it met. Real keys, real
package files, the real command."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from serpentlib.errors import PackageError
from serpentlib.pkg.installer import Root
from serpentlib.pkg.keys import KeyStore, TrustError
from serpentlib.pkg.repo import SIGNATURE, Repository, write_index
from serpentlib.stages.stage4 import filesystem_package

from .test_packages import package, repo  # noqa: F401  (the fixture: filesystem, base, tool)
from serpentlib.pkg.package import write_archive


def serpent(*args, keys=None):
    env = {**os.environ, **({"SERPENT_KEYS": str(keys)} if keys else {})}
    return subprocess.run([sys.executable, "-m", "serpentlib.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def install(tmp_path, repo_dir, *extra, keys=None):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return serpent("pkg", "install", "tool", "--root", root, "--repo", repo_dir, *extra, keys=keys), root


def test_a_signed_repository_installs(tmp_path, repo):  # noqa: F811
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 0, done.stderr
    assert "installed base, tool" in done.stdout and "index signed by" in done.stdout


def test_an_unsigned_index_is_refused(tmp_path, repo):  # noqa: F811
    (repo.path / SIGNATURE).unlink()
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 2 and "is unsigned" in done.stderr and "--insecure" in done.stderr
    assert not (root / "usr").exists()


def test_a_tampered_index_is_refused_as_a_bad_signature(tmp_path, repo):  # noqa: F811
    index = repo.path / "index.json"
    index.write_text(index.read_text().replace("tool for tests", "tool for everyone"))
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 2 and "bad signature" in done.stderr, done.stderr
    assert not (root / "usr").exists()


def test_a_tampered_package_with_its_index_rewritten_to_match_is_refused(tmp_path, repo):  # noqa: F811
    """What an attacker who can write the repository but has no key would do: change a package,
    then put its new sha256 into the index. Today's index check alone lets that through."""
    m = repo.manifest("tool")
    evil, where = package(tmp_path, "tool", {"usr/bin/tool": "#!/usr/bin/hello\necho owned\n"}, depends=["base"])
    path = write_archive(evil, where, repo.path, 1577836800)
    assert path.name == m.filename
    index = repo.path / "index.json"
    data = json.loads(index.read_text())
    data["packages"]["tool"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    data["packages"]["tool"]["size"] = path.stat().st_size
    index.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 2 and "bad signature" in done.stderr, done.stdout + done.stderr
    assert not (root / "usr/bin/tool").exists()


def test_a_package_changed_after_signing_is_refused(tmp_path, repo):  # noqa: F811
    path = repo.path / repo.entry("base").file
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 2 and "differs from the index" in done.stderr
    insecure, _ = install(tmp_path, repo.path, "--insecure")
    assert insecure.returncode == 2 and "differs from the index" in insecure.stderr, "--insecure skips only the signature"
    assert not (root / "usr").exists()


def test_an_index_signed_by_an_unknown_key_is_refused_and_trust_names_it(tmp_path, repo):  # noqa: F811
    stranger = KeyStore(tmp_path / "stranger")
    write_index(repo.path, [repo.manifest(n) for n in repo.entries], stranger)
    kid = stranger.signing_id()
    done, root = install(tmp_path, repo.path)
    assert done.returncode == 2 and f"signed by an unknown key {kid}" in done.stderr, done.stderr
    assert not (root / "usr").exists()
    trusting, _ = install(tmp_path, repo.path, "--trust", tmp_path / "stranger" / f"{kid}.pub")
    assert trusting.returncode == 0, trusting.stderr


def test_insecure_says_what_it_skips_and_installs_an_unsigned_index(tmp_path, repo):  # noqa: F811
    (repo.path / SIGNATURE).unlink()
    done, root = install(tmp_path, repo.path, "--insecure")
    assert done.returncode == 0, done.stderr
    assert "signature is not checked" in done.stderr and "still checked against that index" in done.stderr
    assert (root / "usr/bin/tool").is_file()


def test_a_root_trusts_the_keys_under_etc_serpent_keys(tmp_path):
    """The layout package carries the signing key's public half; a root that has it installs from
    a repository signed by that key, with no key store at all."""
    publisher = KeyStore(tmp_path / "publisher")
    signer = publisher.generate()
    fs, where = filesystem_package(tmp_path / "fs", (signer,))
    assert f"/etc/serpent/keys/{signer.id}.pub" in {f.path for f in fs.files}
    base, base_where = package(tmp_path, "base", {"usr/bin/hello": "#!/bin/sh\necho hello\n"})
    out = tmp_path / "repo"
    for m, w in ((fs, where), (base, base_where)):
        write_archive(m, w, out, 1577836800)
    write_index(out, [fs, base], publisher)
    (tmp_path / "root").mkdir()
    empty = tmp_path / "no-keys"
    first = serpent("pkg", "install", "filesystem", "--root", tmp_path / "root", "--repo", out, keys=empty)
    assert first.returncode == 2 and "unknown key" in first.stderr  # an empty root trusts nothing yet
    Root(tmp_path / "root").install(Repository(out), ["filesystem"], trusted={signer.id: signer})
    assert (tmp_path / "root/etc/serpent/keys" / f"{signer.id}.pub").read_bytes() == signer.pem()
    then = serpent("pkg", "install", "base", "--root", tmp_path / "root", "--repo", out, keys=empty)
    assert then.returncode == 0, then.stderr


def test_key_generate_list_retire(tmp_path):
    keys = tmp_path / "keys"
    made = serpent("key", "generate", "--keys", keys)
    assert made.returncode == 0, made.stderr
    first = KeyStore(keys).signing_id()
    assert (keys / f"{first}.key").stat().st_mode & 0o777 == 0o600 and keys.stat().st_mode & 0o777 == 0o700
    assert serpent("key", "retire", first, "--keys", keys).returncode == 2  # the signing key stays
    assert serpent("key", "generate", "--keys", keys).returncode == 0
    second = KeyStore(keys).signing_id()
    listed = serpent("key", "list", "--keys", keys).stdout
    assert f"{second}  signs" in listed and first in listed
    assert serpent("key", "retire", first, "--keys", keys).returncode == 0
    assert not (keys / f"{first}.pub").exists() and (keys / "retired" / f"{first}.key").is_file()
    assert first not in KeyStore(keys).public()


def test_a_private_key_others_can_read_is_refused(tmp_path):
    store = KeyStore(tmp_path / "keys")
    kid = store.generate().id
    (store.path / f"{kid}.key").chmod(0o644)
    with pytest.raises(TrustError, match="can be read by others"):
        store.signing_key()


def test_a_renamed_public_key_is_refused(tmp_path, caplog):
    store = KeyStore(tmp_path / "keys")
    kid = store.generate().id
    os.rename(store.path / f"{kid}.pub", store.path / "0000000000000000.pub")
    with caplog.at_level("WARNING"):
        assert store.public() == {}, "a key under another key's name is trusted as neither"
    assert f"holds the key {kid}" in caplog.text


def test_signing_is_reproducible(tmp_path, repo):  # noqa: F811
    before = {p.name: p.read_bytes() for p in repo.path.iterdir()}
    write_index(repo.path, [repo.manifest(n) for n in repo.entries])
    assert {p.name: p.read_bytes() for p in repo.path.iterdir()} == before


def test_a_malformed_key_in_the_root_blocks_no_install(tmp_path, caplog):
    """One broken .pub in the root's keys once blocked every install, --insecure included."""
    from serpentlib.pkg.keys import ROOT_KEYS, public_keys

    keys = tmp_path / ROOT_KEYS
    keys.mkdir(parents=True)
    (keys / "0123456789abcdef.pub").write_text("not a key\n")
    with caplog.at_level("WARNING"):
        assert public_keys(keys) == {}
    assert "0123456789abcdef.pub: not a readable public key" in caplog.text


def test_the_last_step_of_a_rotation_leaves_pkg_verify_clean(tmp_path):
    """Step 4 once left `pkg verify` failing for good: the root's filesystem package owns the old
    key's file, so deleting it by hand made it missing."""
    from serpentlib.pkg.keys import ROOT_KEYS
    from serpentlib.pkg.package import write_archive

    store = KeyStore(tmp_path / "keys")
    old = store.generate()
    fs, where = filesystem_package(tmp_path / "fs", (old,))
    write_archive(fs, where, tmp_path / "repo", 1577836800)
    write_index(tmp_path / "repo", [fs], store)
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    root.install(Repository(tmp_path / "repo"), ["filesystem"], trusted=store.public())
    assert (tmp_path / "root" / ROOT_KEYS / f"{old.id}.pub").is_file() and root.verify() == []
    root.untrust(old.id)
    assert not (tmp_path / "root" / ROOT_KEYS / f"{old.id}.pub").exists() and root.untrusted() == [old.id]
    assert root.verify() == [], "taken out on purpose: not missing"
    with pytest.raises(PackageError, match="holds no key 0123456789abcdef"):
        root.untrust("0123456789abcdef")
