"""Stage 0: the seed root.

A pinned Debian release made by mmdebstrap (or debootstrap) from Debian's packages, holding
the seed compiler and the build tools. Every host-side step (apt-get source, patching, stage 1,
stage 2, stage 3's host builds) runs inside it, read-only, so the host is never changed and
any Linux host gives the same bytes. Seeds are kept under `<seeds>/<key>/`, the key hashing
the seed's recipe (suite, architecture, variant, package list); `manifest.json` beside the
root records every installed package and version and is checked on use.

The Debian mirror comes from the profile's `seed.mirror`, else SERPENT_DEBIAN_MIRROR, else the
host's own apt sources; it is not part of the key and never written into the project.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ..hashes import SOURCE_DATE_EPOCH, digest, listing
from ..errors import SeedError
from ..files import walk, within
from ..paths import CACHE_HOME
from .lock import exclusive
from ..rows import Step
from .sandbox import Bind, Sandbox

log = logging.getLogger(__name__)

DEFAULT_SEEDS = CACHE_HOME / "seeds"
FORMAT = 2  # bump when the way seeds are made changes what is in them (2: no device nodes)
FILES = "files.json"  # every entry of the root as it was made: what `verify(thorough=True)` holds it to
APT_AS_ROOT = ["-o", "APT::Sandbox::User=root", "-o", "Dir::Cache=/tmp/apt-cache"]
# What records name when they say which tools seeded a run.
NOTABLE = ("clang-14", "lld-14", "llvm-14", "libclang-rt-14-dev", "libc6", "make", "cmake", "python3", "patch",
           "autoconf", "automake")
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid", "unstable", "testing", "stable",
                 "oldstable")


@dataclass(frozen=True)
class SeedSpec:
    """The seed's recipe, from the profile's `seed:` block."""

    suite: str
    packages: tuple[str, ...]
    mirror: str = ""
    arch: str = "amd64"
    variant: str = "apt"

    @classmethod
    def from_params(cls, seed: dict) -> SeedSpec:
        unknown = set(seed) - {"suite", "packages", "mirror", "arch", "variant"}
        if unknown or not seed.get("suite") or not seed.get("packages"):
            raise SeedError(f"the profile's seed block is not valid: {seed!r}",
                            "write `seed: {suite: bookworm, packages: [clang, lld, ...]}` (keys: suite, packages, "
                            "mirror, arch, variant)")
        return cls(str(seed["suite"]), tuple(sorted(set(seed["packages"]))), str(seed.get("mirror") or ""),
                   str(seed.get("arch") or "amd64"), str(seed.get("variant") or "apt"))

    @property
    def key(self) -> str:
        return digest(FORMAT, self.suite, self.arch, self.variant, list(self.packages))[:24]


@dataclass
class Seed:
    """A made and verified seed root."""

    spec: SeedSpec
    dir: Path
    manifest: dict = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def lists(self) -> Path:
        """apt's package and source indexes: beside the root, so refreshing them leaves it alone."""
        return self.dir / "apt-lists"

    def sandbox(self, **kw) -> Sandbox:
        """A sandbox whose `/` is this seed, read-only; `writable`/`visible` trees appear at their own paths."""
        kw.setdefault("path", "/usr/bin:/bin:/usr/sbin:/sbin")
        kw.setdefault("writable", [])
        return Sandbox(seed=self.root, **kw)

    def apt_sandbox(self, workdir: Path) -> Sandbox:
        """The seed with network, its apt indexes writable and the host's resolver: for apt-get source."""
        binds = [Bind(self.lists, "/var/lib/apt/lists", readonly=False)]
        if Path("/etc/resolv.conf").exists():
            binds.append(Bind(Path("/etc/resolv.conf").resolve(), "/etc/resolv.conf"))
        return self.sandbox(binds=binds, writable=[workdir], network=True)

    @property
    def clang(self) -> dict:
        """The seed compiler: version, resource_dir, triple (as its own `clang` reports them)."""
        return self.manifest["clang"]

    def facts(self) -> dict:
        """What records keep of the seed: enough for `serpent compare` to tell two seeds apart."""
        packages = self.manifest.get("packages", {})
        return {"suite": self.spec.suite, "key": self.spec.key, "arch": self.spec.arch,
                "packages": len(packages), "packages_digest": digest(packages)[:16],
                "clang": self.clang.get("version_line", ""),
                "versions": {p: packages[p] for p in NOTABLE if p in packages}}

    @property
    def build_key(self) -> str:
        """What builds made in this seed depend on: the exact package versions, not only the recipe."""
        return digest(self.spec.key, self.manifest.get("packages", {}))


# -- the mirror ----------------------------------------------------------------------------------
def _apt_entries(text: str, deb822: bool) -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of every binary `deb` entry in an apt sources file."""
    out = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text.strip()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                out.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    else:
        for line in text.splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if m:
                out.append((m.group(1), [m.group(2)], m.group(3).split()))
    return out


def mirror_from_apt(etc_apt: Path = Path("/etc/apt")) -> str | None:
    """The first Debian archive (not security, not updates) among the host's apt sources."""
    files = [(etc_apt / "sources.list", False)]
    files += [(f, False) for f in sorted((etc_apt / "sources.list.d").glob("*.list"))]
    files += [(f, True) for f in sorted((etc_apt / "sources.list.d").glob("*.sources"))]
    for path, deb822 in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for uri, suites, components in _apt_entries(text, deb822):
            base = [s for s in suites if s in DEBIAN_SUITES]
            if base and "main" in components and "security" not in uri:
                return uri.rstrip("/")
    return None


def debian_mirror(spec: SeedSpec, etc_apt: Path = Path("/etc/apt")) -> str:
    mirror = spec.mirror or os.environ.get("SERPENT_DEBIAN_MIRROR") or mirror_from_apt(etc_apt)
    if not mirror:
        raise SeedError("no Debian mirror to make the seed root from: the profile's seed.mirror is empty, "
                        "SERPENT_DEBIAN_MIRROR is not set, and this host's apt sources name no Debian archive",
                        "set SERPENT_DEBIAN_MIRROR to a Debian mirror's URL (the directory holding dists/ and "
                        "pool/), or seed.mirror in the profile")
    return mirror


# -- making and checking -------------------------------------------------------------------------
def seeds_dir() -> Path:
    return Path(os.environ.get("SERPENT_SEEDS") or DEFAULT_SEEDS)


def _maker() -> str:
    if os.geteuid() != 0:  # only mmdebstrap makes a root without root, in a user namespace of subordinate ids
        if not shutil.which("mmdebstrap", path="/usr/bin:/usr/sbin:/bin:/sbin"):
            raise SeedError("as an ordinary user, stage 0 is made by mmdebstrap (--mode=unshare), which is not "
                            "installed", "as root, once: apt-get install mmdebstrap uidmap (sudo make setup does)")
        subordinate_ids()
        return "mmdebstrap"
    for tool in ("mmdebstrap", "debootstrap"):
        if shutil.which(tool, path="/usr/bin:/usr/sbin:/bin:/sbin"):
            return tool
    raise SeedError("neither mmdebstrap nor debootstrap is installed: stage 0 needs one to make the seed root",
                    "install mmdebstrap (Debian, Ubuntu, Arch, Fedora and openSUSE package it) or debootstrap; "
                    "on a host with apt, `make setup` does")


def subordinate_ids() -> None:
    """mmdebstrap's unshare mode maps the seed's users to this user's subordinate ids: it needs
    newuidmap and a range in /etc/subuid and /etc/subgid. Say which is missing, and how to add it."""
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    for tool in ("newuidmap", "newgidmap"):
        if not shutil.which(tool, path="/usr/bin:/usr/sbin:/bin:/sbin"):
            raise SeedError(f"{tool} is not installed: an ordinary user's stage 0 needs it",
                            "as root, once: apt-get install uidmap (sudo make setup does)")
    for table in ("/etc/subuid", "/etc/subgid"):
        try:
            ranges = [ln.split(":")[0] for ln in Path(table).read_text().splitlines() if ln.strip()]
        except OSError:
            ranges = []
        if user not in ranges and str(os.getuid()) not in ranges:
            raise SeedError(f"{user} has no subordinate id range in {table}: an ordinary user's stage 0 needs one",
                            f"as root, once: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}")


def _stream(argv: list[str], logfile: Path, progress, env: dict | None = None) -> None:
    """Run a host command, its output into `logfile`, its progress lines (`I: ...`) to `progress`."""
    with open(logfile, "a") as out:
        out.write(f"# {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", **(env or {})})
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith(("I: ", "E: ")) or line.startswith("W: Failure"):
                progress(f"stage0: {line.rstrip()}")
        code = proc.wait()
    if code != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
        raise SeedError(f"stage 0: {argv[0]} failed (exit {code}); log: {logfile}\n{tail}",
                        "check the mirror (SERPENT_DEBIAN_MIRROR) and the network; the run can be repeated")


def capture(seed: Seed, argv: list[str], logfile: Path, apt: bool = False, cwd: Path | None = None) -> tuple[int, str]:
    """Run `argv` in the seed (with network and writable apt indexes when `apt`); return its exit
    code and output (stdout and stderr), which is also kept in `logfile`."""
    work = Path(cwd or logfile.parent)
    box = seed.apt_sandbox(work) if apt else seed.sandbox(writable=[work])
    start = logfile.stat().st_size if logfile.exists() else 0
    rec = box.run(["/usr/bin/env", *argv], cwd=work, log=logfile, step=Step("stage0", phase="stage0"))  # env finds argv[0] on PATH
    with open(logfile, "rb") as fh:
        fh.seek(start)
        return rec.exit_code, fh.read().decode(errors="replace").split("\n", 1)[-1]  # line 0: the sandbox's header


def _in_seed(seed: Seed, argv: list[str], logfile: Path, apt: bool = False, cwd: Path | None = None) -> str:
    code, text = capture(seed, argv, logfile, apt, cwd)
    if code != 0:
        raise SeedError(f"stage 0: `{' '.join(argv)}` failed in the seed (exit {code}); log: {logfile}\n"
                        + "\n".join(text.splitlines()[-10:]),
                        "recreate the seed with `serpent stage0 --recreate`")
    return text


def _read_manifest(seed: Seed, logfile: Path) -> dict:
    out = _in_seed(seed, ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"], logfile)
    packages = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    clang = _in_seed(seed, ["/bin/sh", "-c", "clang --version | head -1; clang -dumpversion; "
                                             "clang -print-resource-dir; clang -dumpmachine"], logfile).splitlines()
    return {"packages": packages, "clang": {"version_line": clang[0], "version": clang[1],
                                            "resource_dir": clang[2], "triple": clang[3]}}


def create(spec: SeedSpec, where: Path, progress=log.info) -> Seed:
    """Make the seed in `where` (which must not exist) and return it, manifest written."""
    tool, mirror = _maker(), debian_mirror(spec)
    tmp = where.with_name(where.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logfile = tmp / "stage0.log"
    seed = Seed(spec, tmp)
    t0 = time.monotonic()
    progress(f"stage0: making the seed root ({spec.suite}, {len(spec.packages)} packages) with {tool}; "
             f"log: {where / 'stage0.log'}")
    # The fixed date, not today's: /etc/shadow's days of last change and every mtime the tool sets.
    dated = {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    try:
        entries = [f"deb {mirror} {spec.suite} main", f"deb-src {mirror} {spec.suite} main"]
        if tool == "mmdebstrap" and os.geteuid() != 0:
            # As an ordinary user: made in a user namespace of subordinate ids, as a tarball, and
            # unpacked here as this user's own files, which is how bwrap shows them to builds (root's).
            tarball = tmp / "root.tar"
            _stream(["mmdebstrap", "--mode=unshare", "--format=tar", f"--variant={spec.variant}",
                     f"--architectures={spec.arch}", f"--include={','.join(spec.packages)}",
                     "--skip=cleanup/apt/lists", spec.suite, str(tarball), "\n".join(entries)], logfile, progress, dated)
            unpack_root(tarball, seed.root)
            tarball.unlink()
        elif tool == "mmdebstrap":
            _stream(["mmdebstrap", f"--variant={spec.variant}", f"--architectures={spec.arch}",
                     f"--include={','.join(spec.packages)}", "--skip=cleanup/apt/lists",
                     spec.suite, str(seed.root), "\n".join(entries)], logfile, progress, dated)
        else:
            _stream(["debootstrap", "--variant=minbase", f"--arch={spec.arch}",
                     f"--include={','.join(spec.packages)}", spec.suite, str(seed.root), mirror], logfile, progress, dated)
            (seed.root / "etc/apt/sources.list").write_text("\n".join(entries) + "\n")
        for entry in list(walk(seed.root / "dev")):  # every sandbox makes its own /dev: the seed holds no device
            if not (entry.is_dir or entry.is_file or entry.is_link):
                entry.path.unlink()
        lists = seed.root / "var/lib/apt/lists"
        shutil.move(lists, seed.lists)
        (lists / "partial").mkdir(parents=True)  # the apt package's own; dpkg --verify checks it
        if not any(seed.lists.glob("*_Sources*")):  # debootstrap reads no source index
            progress("stage0: reading the source index (apt-get update in the seed)")
            _in_seed(seed, ["apt-get", *APT_AS_ROOT, "update", "-q"], logfile, apt=True, cwd=tmp)
        seed.manifest = {"key": spec.key, "suite": spec.suite, "arch": spec.arch, "variant": spec.variant,
                         "requested": list(spec.packages), "tool": tool, **_read_manifest(seed, logfile),
                         "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "creation_s": round(time.monotonic() - t0, 1)}
        seed.manifest["size_bytes"] = _du(seed.root)
        (tmp / FILES).write_text(json.dumps(listing(seed.root), indent=0, sort_keys=True) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(seed.manifest, indent=1, sort_keys=True) + "\n")
    except BaseException:
        keep = where.with_name(where.name + ".failed.log")
        if logfile.exists():
            shutil.copyfile(logfile, keep)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(where, ignore_errors=True)
    os.replace(tmp, where)
    seed.dir = where
    progress(f"stage0: seed {spec.key} ready in {seed.manifest['creation_s']:.0f} s, "
             f"{seed.manifest['size_bytes'] / 1e6:.0f} MB, {seed.manifest['clang']['version_line']}")
    return seed


def unpack_root(tarball: Path, root: Path) -> None:
    """A root file system from mmdebstrap's tarball, as this (ordinary) user's own files: modes and
    links as in the tarball, owners not (only root may give files away), and no device node or
    fifo (every sandbox makes its own /dev). Nothing is written outside `root`."""
    root.mkdir(parents=True)
    modes: list[tuple[Path, int]] = []
    with tarfile.open(tarball) as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts:
                raise SeedError(f"{tarball}: member {member.name!r} leaves the root", "make the seed again")
            if member.ischr() or member.isblk() or member.isfifo():
                continue
            if member.islnk() and (PurePosixPath(member.linkname).is_absolute() or ".." in PurePosixPath(member.linkname).parts):
                raise SeedError(f"{tarball}: hard link {member.name!r} leaves the root", "make the seed again")
            target = Path(os.path.normpath(root / member.name))
            if target == root:  # the root itself: only its mode, below
                modes.append((root, member.mode))
                continue
            if not within(root, target.parent):  # through a link extracted before it
                raise SeedError(f"{tarball}: member {member.name!r} would be written outside the root through a link",
                                "make the seed again")
            if target.is_symlink():
                target.unlink()
            # A directory's own mode comes last (below), so that its contents can be written first.
            tar.extract(member, root, set_attrs=not (member.issym() or member.isdir()), numeric_owner=True)
            if member.isdir():
                modes.append((root / member.name, member.mode))
    for path, mode in reversed(modes):
        os.chmod(path, mode)


def _du(path: Path) -> int:
    return sum(e.st.st_size for e in walk(path) if not e.is_dir)


def verify(seed: Seed, thorough: bool = False) -> None:
    """Raise SeedError unless the seed's installed packages are its manifest's; `thorough` also
    holds every entry of the seed root, owned by a package or not, against the list taken when it
    was made (files.json: kind, mode, sha256 or link target), and names each one extra, missing or
    changed (a few seconds). Writes nothing in the seed."""
    hint = "recreate it: `serpent stage0 --recreate` (the builds made with it are rebuilt)"
    if seed.manifest.get("key") != seed.spec.key:
        raise SeedError(f"stage 0: {seed.dir} holds seed {seed.manifest.get('key')}, not {seed.spec.key}", hint)
    if thorough:  # before anything of the seed runs: its files as they were made
        listed = json.loads((seed.dir / FILES).read_text())
        found = listing(seed.root)
        lines = [f"/{p}: {'extra' if p not in listed else 'missing' if p not in found else 'changed'}"
                 for p in sorted(set(listed) | set(found)) if listed.get(p) != found.get(p)]
        if lines:
            raise SeedError(f"stage 0: the seed root differs from the list of its files taken when it was "
                            f"made ({len(lines)}): " + "; ".join(lines[:8]), hint)
    with tempfile.TemporaryDirectory(prefix="serpent-seed-verify-") as tmp:
        logfile = Path(tmp) / "verify.log"
        now = _read_manifest(seed, logfile)
        if now["packages"] != seed.manifest["packages"]:
            was, got = seed.manifest["packages"], now["packages"]
            changed = changed_packages(was, got)
            raise SeedError("stage 0: the seed's packages differ from its manifest: "
                            + ", ".join(f"{p} {was.get(p, '-')} -> {got.get(p, '-')}" for p in changed[:10]), hint)


def changed_packages(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The packages two seeds' manifests hold at different versions (or one holds alone), sorted."""
    return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))


def ensure(params: dict, progress=log.info, thorough: bool = False, recreate: bool = False) -> Seed:
    """The profile's seed: made if missing, verified if present."""
    spec = SeedSpec.from_params(params)
    where = seeds_dir() / spec.key
    where.parent.mkdir(parents=True, exist_ok=True)
    # Two runs wanting the same seed: one makes it, the other waits.
    with exclusive(where.parent / f"{spec.key}.lock", purpose=f"stage 0 seed {spec.key}"):
        manifest = where / "manifest.json"
        if not recreate and manifest.is_file() and not (where / FILES).is_file():
            progress(f"stage0: seed {spec.key} was made before seeds listed their files: making it anew")
            recreate = True
        if recreate or not manifest.is_file():
            seed = create(spec, where, progress)
        else:
            seed = Seed(spec, where, json.loads(manifest.read_text()))
        t0 = time.monotonic()
        verify(seed, thorough=thorough)
        log.debug("stage0: seed %s verified in %.1f s", spec.key, time.monotonic() - t0)
    return seed
