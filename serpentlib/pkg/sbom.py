"""Software bills of materials: SPDX 2.3 JSON, one document per package and one per root.

Everything comes from the repository: each package file's manifest (name, version, license, the
build info with its sources and patches, their Origin and Upstream-Status) and the files in it,
hashed again here (SPDX asks for SHA1 beside SHA256). A package CONTAINS its files, is
GENERATED_FROM its sources (to which its patches are PATCH_APPLIED), DEPENDS_ON what it needs at
run time, and each of its build dependencies is BUILD_DEPENDENCY_OF it. The creation time is
SOURCE_DATE_EPOCH's, so the same repository gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import __version__
from ..files import write_atomic
from .installer import Root
from ..errors import PackageError
from ..hashes import stream_hashes
from .package import MANIFEST, Manifest, read_manifest
from .repo import Repository

NAMESPACE = "https://spdx.serpentlib.invalid"   # .invalid: a name of our own that resolves nowhere
SUPPLIER = "Organization: serpentlib"
CREATORS = [f"Tool: serpentlib-{__version__}", SUPPLIER]
NOASSERTION = "NOASSERTION"


@dataclass
class Elements:
    """The SPDX packages, files and relationships that describe one thing."""
    packages: list[dict]
    files: list[dict]
    relationships: list[dict]

    def add(self, other: Elements) -> None:
        self.packages += other.packages
        self.files += other.files
        self.relationships += other.relationships


def spdx_id(kind: str, *parts: object) -> str:
    return "SPDXRef-" + "-".join([kind] + [re.sub(r"[^A-Za-z0-9.]", "-", str(p)) for p in parts])


def relation(a: str, kind: str, b: str) -> dict:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def checksums(sha1: str, sha256: str = "") -> list[dict]:
    out = [{"algorithm": "SHA1", "checksumValue": sha1}] if sha1 else []
    return out + ([{"algorithm": "SHA256", "checksumValue": sha256}] if sha256 else [])


def archive_hashes(archive: Path, manifest: Manifest) -> dict[str, tuple[str, str, bytes]]:
    """Path -> (sha1, sha256, first four bytes) of every regular file in a package file; the set
    of files and each sha256 must be the manifest's."""
    wanted = {f.path: f.sha256 for f in manifest.files if f.type == "file"}
    out = {}
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            if member.name == MANIFEST or not member.isreg():
                continue
            path = "/" + member.name.removeprefix("root/")
            first: list[bytes] = []
            with tar.extractfile(member) as fh:
                got = stream_hashes(fh, "sha1", "sha256", sink=lambda block: first or first.append(block[:4]))
            out[path] = (got["sha1"], got["sha256"], first[0] if first else b"")
            if wanted.get(path) != out[path][1]:
                raise PackageError(f"{archive.name}: {path} does not match its manifest's sha256",
                                   "the package is damaged: rebuild the repository")
    if set(out) != set(wanted):
        raise PackageError(f"{archive.name}: its files differ from its manifest's ({len(out)} against {len(wanted)})",
                           "the package is damaged: rebuild the repository")
    return out


def file_type(path: str, magic: bytes) -> str:
    if magic == b"\x7fELF":
        return "BINARY"
    return "ARCHIVE" if path.endswith(".a") else "OTHER"


def verification_code(sha1s: list[str]) -> str:
    """SPDX's package verification code: the SHA1 of its files' sorted SHA1s, joined."""
    return hashlib.sha1("".join(sorted(sha1s)).encode()).hexdigest()


def package_element(m: Manifest, sha256: str, files_analyzed: bool, sha1s: list[str] = ()) -> dict:
    """A binary package; with its files analysed, or as a reference (a dependency)."""
    out = {"SPDXID": spdx_id("Package", m.name), "name": m.name, "versionInfo": f"{m.version}-{m.release}",
           "supplier": SUPPLIER, "downloadLocation": NOASSERTION, "packageFileName": m.filename,
           "filesAnalyzed": files_analyzed, "checksums": checksums("", sha256), "licenseConcluded": m.license,
           "licenseDeclared": m.license, "copyrightText": NOASSERTION, "summary": m.summary,
           "primaryPackagePurpose": "INSTALL"}
    if m.homepage:
        out["homepage"] = m.homepage
    if files_analyzed:
        out["packageVerificationCode"] = {"packageVerificationCodeValue": verification_code(list(sha1s))}
        if m.build.get("compiler"):
            out["sourceInfo"] = f"built by {m.build['compiler']}"
    else:
        out["comment"] = f"described in full by {m.name}.spdx.json"
    return out


def source_elements(m: Manifest) -> Elements:
    """The sources a package was built from, and the patches applied to them."""
    me, build = spdx_id("Package", m.name), m.build
    packages, files, rels = [], [], []
    for i, src in enumerate(build.get("sources", [])):
        sid = spdx_id("Source", m.name, i)
        where = (f"Debian's source package {src['debian']} keeps this exact file"
                 + (" (repacked by Debian from upstream's)" if src.get("repacked") else "") if src.get("debian") else "")
        supplier = "Organization: Debian" if src.get("repacked") or not src.get("url") else f"Organization: {m.name} upstream"
        packages.append({"SPDXID": sid, "name": f"{m.name}-source", "versionInfo": m.version, "supplier": supplier,
                         "downloadLocation": src.get("url") or NOASSERTION, "packageFileName": src["file"],
                         "filesAnalyzed": False, "checksums": checksums("", src["sha256"]),
                         "licenseConcluded": NOASSERTION, "licenseDeclared": m.license, "copyrightText": NOASSERTION,
                         "primaryPackagePurpose": "SOURCE", **({"sourceInfo": where} if where else {})})
        rels.append(relation(me, "GENERATED_FROM", sid))
    if build.get("source_dir"):
        sid = spdx_id("Source", m.name, 0)
        packages.append({"SPDXID": sid, "name": f"{m.name}-source", "versionInfo": m.version, "supplier": SUPPLIER,
                         "downloadLocation": NOASSERTION, "filesAnalyzed": False, "licenseConcluded": NOASSERTION,
                         "licenseDeclared": m.license, "copyrightText": NOASSERTION, "primaryPackagePurpose": "SOURCE",
                         "sourceInfo": f"serpentlib's own source, {build['source_dir']} (recipe tree sha256 "
                                       f"{build.get('recipe_sha256', '?')})"})
        rels.append(relation(me, "GENERATED_FROM", sid))
    for i, patch in enumerate(build.get("patches", [])):
        pid = spdx_id("Patch", m.name, i)
        files.append({"SPDXID": pid, "fileName": f"./recipes/{m.name}/patches/{patch['name']}",
                      "checksums": checksums(patch["sha1"], patch["sha256"]), "fileTypes": ["SOURCE"],
                      "licenseConcluded": NOASSERTION, "copyrightText": NOASSERTION,
                      "comment": f"Origin: {patch['origin']}\nUpstream-Status: {patch['upstream_status']}"
                                 + (f"\nSubject: {patch['subject']}" if patch.get("subject") else "")})
        rels.append(relation(pid, "PATCH_APPLIED", spdx_id("Source", m.name, 0) if packages else me))
    return Elements(packages, files, rels)


def package_elements(m: Manifest, archive: Path, sha256: str) -> Elements:
    """A package in full: itself, its files, its sources and patches."""
    hashes = archive_hashes(archive, m)
    me = spdx_id("Package", m.name)
    files, rels = [], []
    for i, path in enumerate(sorted(hashes)):
        sha1, file_sha256, magic = hashes[path]
        fid = spdx_id("File", m.name, i)
        files.append({"SPDXID": fid, "fileName": "." + path, "checksums": checksums(sha1, file_sha256),
                      "fileTypes": [file_type(path, magic)], "licenseConcluded": NOASSERTION,
                      "copyrightText": NOASSERTION})
        rels.append(relation(me, "CONTAINS", fid))
    out = Elements([package_element(m, sha256, True, [h[0] for h in hashes.values()])], files, rels)
    out.add(source_elements(m))
    return out


def dependency_relations(m: Manifest, known: set[str]) -> list[dict]:
    """Run-time DEPENDS_ON, and BUILD_DEPENDENCY_OF from each build dependency, among `known`."""
    me = spdx_id("Package", m.name)
    rels = [relation(me, "DEPENDS_ON", spdx_id("Package", d)) for d in m.depends if d in known]
    rels += [relation(spdx_id("Package", d), "BUILD_DEPENDENCY_OF", me)
             for d in m.build.get("build_depends", []) if d in known]
    for r in rels:  # what of libwildebeest the package holds (pkg/wildebeest.py)
        parts = m.build.get("wildebeest_parts")
        if r["spdxElementId"] == spdx_id("Package", "libwildebeest") and parts:
            r["comment"] = ("its files keep no symbol table: which parts of libwildebeest it uses cannot be read "
                            "from them" if parts == ["(no symbol table)"] else f"uses libwildebeest's {', '.join(parts)}")
    return rels


def document(name: str, namespace: str, describes: str, elements: Elements, created: int, comment: str) -> dict:
    return {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
            "documentNamespace": namespace, "comment": comment,
            "creationInfo": {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                             "creators": CREATORS,
                             "comment": "created is SOURCE_DATE_EPOCH: the same packages give the same document"},
            "packages": elements.packages, "files": elements.files,
            "relationships": [relation("SPDXRef-DOCUMENT", "DESCRIBES", describes)] + elements.relationships}


@dataclass(frozen=True)
class Written:
    root: Path | None
    packages: dict[str, Path]


def write_documents(repo: Path, out: Path, created: int, root: Path | None = None, root_name: str = "root") -> Written:
    """`<out>/<package>.spdx.json` for every package of the repository and, given a root installed
    from it, `<out>/root.spdx.json` for the packages installed there."""
    repository = Repository(repo)
    out.mkdir(parents=True, exist_ok=True)
    archives = {n: repository.archive(n) for n in repository.entries}   # each checked against the index once
    manifests = {n: read_manifest(a) for n, a in archives.items()}
    full = {n: package_elements(m, archives[n], repository.entry(n).sha256) for n, m in manifests.items()}
    written = {}
    for name, m in manifests.items():
        others = sorted({*m.depends, *m.build.get("build_depends", [])} & set(manifests) - {name})
        elements = Elements(list(full[name].packages), list(full[name].files), list(full[name].relationships))
        elements.packages += [package_element(manifests[d], repository.entry(d).sha256, False) for d in others]
        elements.relationships += dependency_relations(m, set(others))
        sha256 = repository.entry(name).sha256
        doc = document(f"{name}-{m.version}-{m.release}", f"{NAMESPACE}/packages/{m.filename}-{sha256}",
                       spdx_id("Package", name), elements, created,
                       f"The serpent package {m.filename}: its files, sources and patches, and the packages it "
                       "needs to run or was built with (in full in their own documents)")
        written[name] = _write(out / f"{name}.spdx.json", doc)
    if root is None:
        return Written(None, written)
    installed = Root(root).installed()
    for name, m in installed.items():
        if name not in manifests or manifests[name].filename != m.filename:
            raise PackageError(f"{root}: {m.filename} is installed, but {repo} does not hold it",
                               "describe a root installed from this repository")
    top = spdx_id("Root", root_name)
    elements = Elements([{"SPDXID": top, "name": root_name, "versionInfo": hashlib.sha256(repository.index_bytes).hexdigest()[:16],
                          "supplier": SUPPLIER, "downloadLocation": NOASSERTION, "filesAnalyzed": False,
                          "licenseConcluded": NOASSERTION, "licenseDeclared": NOASSERTION, "copyrightText": NOASSERTION,
                          "primaryPackagePurpose": "OPERATING-SYSTEM",
                          "comment": "a root installed from the repository alone; versionInfo: the start of its "
                                     "index's sha256"}], [], [])
    for name in sorted(installed):
        elements.add(full[name])
        elements.relationships += [relation(top, "CONTAINS", spdx_id("Package", name))]
        elements.relationships += dependency_relations(installed[name], set(installed))
    doc = document(root_name, f"{NAMESPACE}/roots/{root_name}-{hashlib.sha256(repository.index_bytes).hexdigest()}",
                   top, elements, created, f"Every package installed in the root {root_name}, with its files, "
                   "sources, patches and dependencies")
    return Written(_write(out / "root.spdx.json", doc), written)


def _write(path: Path, doc: dict) -> Path:
    return write_atomic(path, json.dumps(doc, indent=1) + "\n")


# -- what the report shows -------------------------------------------------------------------------
def licenses(doc: dict) -> pd.DataFrame:
    """One row per declared license of the binary packages: which packages carry it."""
    rows: dict[str, list[str]] = {}
    for p in doc["packages"]:
        if p.get("primaryPackagePurpose") == "INSTALL" and p.get("filesAnalyzed"):
            rows.setdefault(p["licenseDeclared"], []).append(p["name"])
    return pd.DataFrame([{"license": k, "packages": len(v), "names": ", ".join(sorted(v))} for k, v in sorted(rows.items())],
                        columns=["license", "packages", "names"])


def patches(doc: dict) -> pd.DataFrame:
    """Every patch: the package, where it came from and whether upstream has it."""
    owner = {r["spdxElementId"]: r["relatedSpdxElement"] for r in doc["relationships"]
             if r["relationshipType"] == "PATCH_APPLIED"}
    names = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    rows = []
    for f in doc["files"]:
        if f["SPDXID"] not in owner:
            continue
        fields = dict(line.split(": ", 1) for line in f.get("comment", "").splitlines() if ": " in line)
        rows.append({"package": names.get(owner[f["SPDXID"]], "?").removesuffix("-source"),
                     "patch": Path(f["fileName"]).name, "origin": fields.get("Origin", ""),
                     "upstream_status": fields.get("Upstream-Status", "")})
    return pd.DataFrame(rows, columns=["package", "patch", "origin", "upstream_status"])


def build_dependents(doc: dict, name: str) -> list[str]:
    """The packages `name` is a build dependency of (e.g. libwildebeest's users)."""
    names = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    return sorted(names[r["relatedSpdxElement"]] for r in doc["relationships"]
                  if r["relationshipType"] == "BUILD_DEPENDENCY_OF" and r["spdxElementId"] == spdx_id("Package", name))


@dataclass(frozen=True)
class Summary:
    documents: str          # markdown links to the documents, relative to the run directory
    licenses: pd.DataFrame
    patches: pd.DataFrame
    wildebeest_users: list[str]


def summary(run_dir: Path) -> Summary:
    """What the stage 4 report shows of `<run_dir>/sbom/`."""
    folder = Path(run_dir) / "sbom"
    root = folder / "root.spdx.json"
    if not root.is_file():
        raise PackageError(f"no SBOM in {folder}", "stage 4 writes it after installing the root: serpent run --stage 4")
    doc = json.loads(root.read_text())
    each = ", ".join(f"[{p.name.removesuffix('.spdx.json')}](sbom/{p.name})" for p in sorted(folder.glob("*.spdx.json"))
                     if p != root)
    links = f"SPDX 2.3: [the root](sbom/{root.name}) ({len(doc['packages'])} packages, {len(doc['files'])} files); " \
            f"per package: {each}"
    return Summary(links, licenses(doc), patches(doc), build_dependents(doc, "libwildebeest"))


__all__ = ["NAMESPACE", "Summary", "Written", "archive_hashes", "build_dependents", "licenses", "patches", "summary",
           "write_documents"]
