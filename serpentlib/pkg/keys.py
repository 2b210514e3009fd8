"""Signing keys (ed25519) and signed files.

The key store (`SERPENT_KEYS`, or ~/.local/share/serpentlib/keys: kept data, not a cache, since a
lost key cannot be made again) holds `<id>.key` (the private key, PKCS#8 PEM, mode 0600),
`<id>.pub` (the public key, PEM) and `signing` (the id of the key that signs). A key's id is
the first 16 hex digits of the sha256 of its raw public key. A signature sits beside the file
it signs as `<file>.sig`: {"algorithm": "ed25519", "key": id, "signature": base64}.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import TrustError
from ..build.lock import exclusive
from ..files import write_atomic

log = logging.getLogger(__name__)

ALGORITHM = "ed25519"
ROOT_KEYS = Path("etc/serpent/keys")   # where a root keeps the public keys it trusts


@dataclass(frozen=True)
class PublicKey:
    id: str
    key: Ed25519PublicKey
    origin: Path          # the file it was read from

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def default_store() -> Path:
    return Path(os.environ.get("SERPENT_KEYS") or Path.home() / ".local/share/serpentlib/keys")


def load_public(path: Path) -> PublicKey:
    """A public key file; its name must be its id, so a renamed or swapped file is caught."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise TrustError(f"{path}: not a readable public key: {exc}",
                         "put there the <id>.pub that `serpent key generate` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError(f"{path}: not an {ALGORITHM} public key", "serpent signs with ed25519 keys only")
    kid = key_id(key)
    if Path(path).stem != kid:
        raise TrustError(f"{path}: holds the key {kid}, not {Path(path).stem}", f"name the file {kid}.pub")
    return PublicKey(kid, key, Path(path))


def public_keys(*places: Path) -> dict[str, PublicKey]:
    """Every `*.pub` in the given directories (a missing one holds none) and the given files; a
    file that is no key of ours is left out with a warning naming it (one bad file must not
    block every install: the index's own signer is still required)."""
    found: dict[str, PublicKey] = {}
    for place in places:
        place = Path(place)
        files = sorted(place.glob("*.pub")) if place.is_dir() else [place] if place.is_file() else []
        for f in files:
            try:
                k = load_public(f)
            except TrustError as exc:
                log.warning("left out of the trusted keys: %s", exc.message)
                continue
            found[k.id] = k
    return found


class KeyStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_store()

    def generate(self) -> PublicKey:
        """A new key pair, which becomes the signing key; older keys stay until retired."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        fd = os.open(self.path / f"{kid}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public = PublicKey(kid, private.public_key(), self.path / f"{kid}.pub")
        public.origin.write_bytes(public.pem())
        write_atomic(self.path / "signing", kid + "\n")
        return public

    def signing_id(self) -> str | None:
        f = self.path / "signing"
        return f.read_text().strip() if f.is_file() else None

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The key that signs, refused if others can read it."""
        kid = self.signing_id()
        if kid is None:
            raise TrustError(f"no signing key in {self.path}", "make one: serpent key generate")
        path = self.path / f"{kid}.key"
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise TrustError(f"{path} can be read by others (mode {mode:o})", f"chmod 600 {path}")
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise TrustError(f"{path}: the signing key cannot be read: {exc}",
                             "restore it from your backup, or make a new one: serpent key generate") from None
        if not isinstance(key, Ed25519PrivateKey) or key_id(key.public_key()) != kid:
            raise TrustError(f"{path} is not the {ALGORITHM} key {kid}", "restore it, or serpent key generate")
        return kid, key

    def signing_key_or_new(self) -> tuple[str, Ed25519PrivateKey]:
        """The signing key, made on first use."""
        if self.signing_id() is None:
            self.generate()
        return self.signing_key()

    def serial_for(self, content: str) -> tuple[int, int]:
        """The serial of the index whose packages digest to `content`, and when it was first signed
        (seconds since the epoch): the same content keeps its own, new content gets the next one."""
        path = self.path / "serials.json"
        self.path.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path / "serials.lock", purpose="serpent index serials"):
            try:
                known = json.loads(path.read_text()) if path.is_file() else {}
            except ValueError:
                raise TrustError(f"{path} is damaged", "restore it from the key store's backup") from None
            if content not in known:
                known[content] = [max((s for s, _ in known.values()), default=0) + 1, int(time.time())]
                write_atomic(path, json.dumps(known, indent=0, sort_keys=True) + "\n")
        serial, signed = known[content]
        return int(serial), int(signed)

    def public(self) -> dict[str, PublicKey]:
        return public_keys(self.path)

    def retire(self, kid: str) -> Path:
        """Move a key pair to `retired/`: it no longer signs nor is trusted from the store."""
        if not (self.path / f"{kid}.pub").is_file():
            raise TrustError(f"no key {kid} in {self.path}", "see `serpent key list`")
        if kid == self.signing_id():
            raise TrustError(f"{kid} is the signing key", "make its successor first: serpent key generate")
        out = self.path / "retired"
        out.mkdir(mode=0o700, exist_ok=True)
        for suffix in (".key", ".pub"):
            if (self.path / f"{kid}{suffix}").exists():
                shutil.move(self.path / f"{kid}{suffix}", out / f"{kid}{suffix}")
        return out


def sign(data: bytes, kid: str, key: Ed25519PrivateKey) -> str:
    """The signature document for `data`."""
    sig = base64.b64encode(key.sign(data)).decode()
    return json.dumps({"algorithm": ALGORITHM, "key": kid, "signature": sig}, indent=1, sort_keys=True) + "\n"


def verify(data: bytes, signature: Path, trusted: dict[str, PublicKey], what: str) -> PublicKey:
    """The key that signed `data` (`what` names it in errors); raises TrustError naming which of
    unsigned, unknown key or bad signature it is."""
    if not signature.is_file():
        raise TrustError(f"{what} is unsigned: {signature} is missing",
                         "sign it (stage 4 does: serpent run --stage 4), or pass --insecure to skip the check")
    try:
        doc = json.loads(signature.read_text())
        kid, raw = doc["key"], base64.b64decode(doc["signature"], validate=True)
        if doc["algorithm"] != ALGORITHM:
            raise ValueError(f"algorithm {doc['algorithm']!r}, not {ALGORITHM}")
    except (ValueError, KeyError, TypeError) as exc:
        raise TrustError(f"{what}: bad signature: {signature} is malformed ({exc})",
                         "sign it again (serpent run --stage 4)") from None
    if kid not in trusted:
        known = ", ".join(sorted(trusted)) or "none"
        raise TrustError(f"{what} is signed by an unknown key {kid} (trusted: {known})",
                         f"if you trust it, copy {kid}.pub into the root's /{ROOT_KEYS}/ or pass --trust FILE")
    try:
        trusted[kid].key.verify(raw, data)
    except InvalidSignature:
        raise TrustError(f"{what}: bad signature: it does not match the key {kid} ({trusted[kid].origin})",
                         "the file was changed after signing: get the repository again or rebuild it") from None
    return trusted[kid]


__all__ = ["ALGORITHM", "KeyStore", "PublicKey", "ROOT_KEYS", "TrustError", "default_store", "key_id",
           "load_public", "public_keys", "sign", "verify"]
