"""SBOMs of small real packages, checked by the SPDX project's own tools (spdx-tools' parser and
full validation) and by the NTIA minimum elements checker."""

import json

import pytest
from ntia_conformance_checker.ntia_checker import NTIAChecker
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from serpentlib.pkg import sbom
from serpentlib.pkg.installer import Root
from serpentlib.pkg.package import write_archive
from serpentlib.build.recipes import load_recipe
from serpentlib.pkg.repo import Repository, write_index
from serpentlib.stages.stage4 import build_info, filesystem_package, resolve

from .test_packages import package

PATCH = """From: serpentlib
Subject: Say hello politely
Origin: upstream, https://example.org/app/commit/abc123
Upstream-Status: Backport [in app 1.1]
---
--- a/app.c
+++ b/app.c
@@ -1 +1 @@
-hi
+hello
"""

# What the manifests record of stage 0 (Seed.facts() keys).
SEED = {"suite": "bookworm", "key": "k", "clang": "Debian clang version 14.0.6", "packages_digest": "d"}


def recipe(tmp_path, name, depends=(), patches=(), license="MIT", source_dir=False):
    folder = tmp_path / "recipes" / name
    (folder / "patches").mkdir(parents=True)
    for i, text in enumerate(patches):
        (folder / "patches" / f"000{i + 1}-fix.patch").write_text(text)
    lines = [f"name: {name}", "version: '1.0'", f"summary: {name} for tests", f"license: {license}",
             f"homepage: https://example.org/{name}/", f"depends: [{', '.join(depends)}]",
             f"patches: [{', '.join(f'patches/000{i + 1}-fix.patch' for i in range(len(patches)))}]"]
    if source_dir:
        (folder / "src").mkdir()
        (folder / "src" / "x.c").write_text("int x;\n")
        lines += ["source_dir: src", "sources: []"]
    else:
        lines += ["sources:", f"  - url: https://example.org/{name}/{name}-1.0.tar.gz", "    sha256: " + "ab" * 32]
    (folder / "recipe.yaml").write_text("\n".join(lines) + "\n")
    return load_recipe(folder / "recipe.yaml")


@pytest.fixture
def built(tmp_path):
    """filesystem; wild (a static library, its own source); app (patched, built with wild, runs
    with base); base (a shell); all installed into a root."""
    fs, fs_where = filesystem_package(tmp_path / "fs")
    parts = {"base": ({"usr/bin/hello": "#!/bin/sh\necho hello\n", "usr/bin/sh": ("link", "hello")}, recipe(tmp_path, "base")),
             "wild": ({"usr/lib/libwild.a": "!<arch>\n", "usr/include/wild/w.h": "int w;\n"},
                      recipe(tmp_path, "wild", source_dir=True)),
             "app": ({"usr/bin/app": "#!/usr/bin/sh\necho app\n", "usr/share/app/empty": ""},
                     recipe(tmp_path, "app", depends=["wild"], patches=[PATCH], license="GPL-2.0-or-later"))}
    manifests, where = {"filesystem": fs}, {"filesystem": fs_where}
    for name, (files, r) in parts.items():
        manifests[name], where[name] = package(tmp_path, name, files, license=r.license)
        manifests[name].build = build_info(r, [], "tcc 0.9.27", "", SEED)
        manifests[name].homepage = r.homepage
    resolve(manifests)
    out = tmp_path / "repo"
    for name, m in manifests.items():
        write_archive(m, where[name], out, 1577836800)
    write_index(out, list(manifests.values()))
    (tmp_path / "root").mkdir()
    Root(tmp_path / "root").install(Repository(out), list(manifests))
    written = sbom.write_documents(out, tmp_path / "sbom", 1577836800, root=tmp_path / "root", root_name="test-root")
    return written, out


def spdx_problems(path):
    return [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]


def test_every_document_passes_spdx_validation_and_ntia_minimum_elements(built):
    written, _ = built
    for path in [written.root, *written.packages.values()]:
        assert spdx_problems(path) == [], path.name
        ntia = NTIAChecker(str(path))
        assert ntia.compliant, (path.name, ntia.output_json())
        # The checker judges only what DESCRIBES/CONTAINS/DEPENDS_ON reach; sources (GENERATED_FROM)
        # and build dependencies (BUILD_DEPENDENCY_OF) must carry the minimum elements as well.
        for p in json.loads(path.read_text())["packages"]:
            assert p["name"] and p["versionInfo"] and p["supplier"].startswith("Organization: "), p


def test_the_package_document_holds_files_sources_patches_and_relationships(built):
    written, repo = built
    doc = json.loads(written.packages["app"].read_text())
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    app = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Package-app")
    assert app["versionInfo"] == "1.0-1" and app["licenseDeclared"] == "GPL-2.0-or-later"
    assert app["checksums"] == [{"algorithm": "SHA256", "checksumValue": Repository(repo).entry("app").sha256}]
    files = {f["fileName"]: f for f in doc["files"]}
    manifest = Repository(repo).manifest("app")
    shipped = {f.path: f.sha256 for f in manifest.files if f.type == "file"}
    for path, sha256 in shipped.items():
        sums = {c["algorithm"]: c["checksumValue"] for c in files["." + path]["checksums"]}
        assert sums["SHA256"] == sha256 and len(sums["SHA1"]) == 40
        assert ("SPDXRef-Package-app", "CONTAINS", files["." + path]["SPDXID"]) in rels
    source = next(p for p in doc["packages"] if p["primaryPackagePurpose"] == "SOURCE")
    assert source["downloadLocation"] == "https://example.org/app/app-1.0.tar.gz"
    assert source["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    assert ("SPDXRef-Package-app", "GENERATED_FROM", source["SPDXID"]) in rels
    patch = files["./recipes/app/patches/0001-fix.patch"]
    assert "Origin: upstream, https://example.org/app/commit/abc123" in patch["comment"]
    assert "Upstream-Status: Backport [in app 1.1]" in patch["comment"]
    assert (patch["SPDXID"], "PATCH_APPLIED", source["SPDXID"]) in rels
    assert ("SPDXRef-Package-app", "DEPENDS_ON", "SPDXRef-Package-base") in rels
    assert ("SPDXRef-Package-wild", "BUILD_DEPENDENCY_OF", "SPDXRef-Package-app") in rels


def test_the_root_document_contains_every_installed_package_and_shows_build_users(built):
    written, _ = built
    doc = json.loads(written.root.read_text())
    contained = {r["relatedSpdxElement"] for r in doc["relationships"]
                 if r["spdxElementId"] == "SPDXRef-Root-test-root" and r["relationshipType"] == "CONTAINS"}
    assert contained == {f"SPDXRef-Package-{n}" for n in ("filesystem", "base", "wild", "app")}
    assert sbom.build_dependents(doc, "wild") == ["app"]
    own = next(p for p in doc["packages"] if p["name"] == "wild-source")
    assert "recipes/wild/src" in own["sourceInfo"]


def test_the_summary_tables_show_licenses_and_patch_provenance(built, tmp_path):
    written, _ = built
    s = sbom.summary(tmp_path)
    assert dict(zip(s.licenses["license"], s.licenses["names"])) == {
        "CC0-1.0": "filesystem", "GPL-2.0-or-later": "app", "MIT": "base, wild"}
    assert s.patches.to_dict("records") == [{"package": "app", "patch": "0001-fix.patch",
                                             "origin": "upstream, https://example.org/app/commit/abc123",
                                             "upstream_status": "Backport [in app 1.1]"}]
    assert "[the root](sbom/root.spdx.json)" in s.documents and "[app](sbom/app.spdx.json)" in s.documents


def test_the_same_repository_gives_the_same_documents(built, tmp_path):
    written, repo = built
    again = sbom.write_documents(repo, tmp_path / "again", 1577836800, root=tmp_path / "root", root_name="test-root")
    for name, path in written.packages.items():
        assert again.packages[name].read_bytes() == path.read_bytes()
    assert again.root.read_bytes() == written.root.read_bytes()


def test_the_checkers_can_fail(built, tmp_path):
    """A license outside the SPDX list makes the document invalid; a package without a supplier
    misses the NTIA minimum elements."""
    written, _ = built
    doc = json.loads(written.packages["app"].read_text())
    app = next(p for p in doc["packages"] if p["name"] == "app")
    app["licenseDeclared"] = "Foo-Bar"
    bad = tmp_path / "bad.spdx.json"
    bad.write_text(json.dumps(doc))
    assert any("Foo-Bar" in m for m in spdx_problems(bad))
    app["licenseDeclared"] = "MIT"
    del app["supplier"]
    bad.write_text(json.dumps(doc))
    assert spdx_problems(bad) == [] and not NTIAChecker(str(bad)).compliant
