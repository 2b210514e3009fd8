"""Stage 4: the OS. Each stage3 package becomes a binary package; they form a repository; a
fresh root is installed from the repository alone and must stand alone; the policies are
checked over every package, and the tuning flags over every ELF file.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import shutil
import stat
import tempfile
from pathlib import Path

from ..build.cache import CACHE, BuildCache, stage_marker
from ..build.profile import StageParams
from ..build.recipes import Recipe, load_recipes, patch_headers
from ..elf import ElfInfo, archive_info, elf_info, is_archive, is_elf
from ..errors import SerpentError
from ..hashes import sha256_file, stream_hashes, tree_digest
from ..pkg import flags as tuning
from ..pkg import policy, sbom
from ..pkg.installer import Root
from ..pkg.keys import ROOT_KEYS, KeyStore, PublicKey
from ..pkg.package import FileEntry, Manifest, needs_of, scan_tree, write_archive
from ..pkg.repo import Repository, write_index
from ..pkg.wildebeest import parts_used
from ..rows import CheckRecord, Step, expected_failure, skipped, timed
from . import boot
from .common import COMPILERS, SOURCE_DATE_EPOCH, StageResult, StageRun, begin, stage_function
from .compilers import final_compiler
from .layout import BASE_FILES, ROOT_DIRS, ROOT_LINKS, Chroot, write_base_files
from .verify import check_in_root

FILESYSTEM = {"name": "filesystem", "version": "1", "license": "CC0-1.0",
              "summary": "The root's layout: /usr-merged links, base directories and base files"}

STANDALONE = r"""set -e
mkdir -p /build/standalone && cd /build/standalone
cat > Makefile <<'EOF'
roundtrip: roundtrip.c
	$(CC) -o $@ roundtrip.c -lz
EOF
cat > roundtrip.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <zlib.h>
int main(void) {
    const char *text = "serpent stage4 stands alone";
    unsigned char packed[128], back[128];
    uLongf n = sizeof packed, m = sizeof back;
    if (compress(packed, &n, (const unsigned char *)text, strlen(text) + 1) != Z_OK) return 1;
    if (uncompress(back, &m, packed, n) != Z_OK) return 2;
    printf("%s (zlib %s, %lu bytes packed)\n", back, zlibVersion(), (unsigned long)n);
    return strcmp((char *)back, text) != 0;
}
EOF
make  # $(CC): the stage's compiler, from the environment
./roundtrip
"""


def filesystem_package(tree: Path, trusted: tuple[PublicKey, ...] = ()) -> tuple[Manifest, dict[str, Path]]:
    """The layout package: directories (with their modes), the /usr-merge links, base files, and
    the public keys the root trusts (/etc/serpent/keys/<id>.pub)."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    entries = []
    for d in sorted(set(ROOT_DIRS) | {"var", "var/lib", "root"}):
        entries.append(FileEntry("/" + d, "dir", 0o1777 if d == "tmp" else 0o700 if d == "root" else 0o755))
    for link, target in ROOT_LINKS.items():
        entries.append(FileEntry("/" + link, "link", 0o777, target=target))
    write_base_files(tree)
    where = {"/" + rel: tree / rel for rel in BASE_FILES}
    for key in trusted:
        path = tree / ROOT_KEYS / f"{key.id}.pub"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.pem())
        path.chmod(0o644)
        where[f"/{ROOT_KEYS}/{key.id}.pub"] = path
    for path, p in where.items():
        entries.append(FileEntry(path, "file", stat.S_IMODE(p.stat().st_mode), p.stat().st_size, sha256_file(p)))
    entries.sort(key=lambda e: e.path)
    return Manifest(files=entries, release=1, **FILESYSTEM), where


def patch_info(patch: Path) -> dict:
    """A patch as the manifest records it: where it came from and its hashes (SPDX wants SHA1 too)."""
    headers = patch_headers(patch)
    with open(patch, "rb") as fh:
        hashes = stream_hashes(fh, "sha256", "sha1")
    return {"name": patch.name, "sha256": hashes["sha256"], "sha1": hashes["sha1"],
            "origin": headers.get("Origin", ""), "upstream_status": headers.get("Upstream-Status", ""),
            "subject": headers.get("Subject", "")}


def build_info(recipe: Recipe, flag_results: list, compiler: str, cflags: str, seed: dict) -> dict:
    """How the package was built, and from which seed (stage 0: suite, key, clang). No cache key:
    that hashes the work directory's path too, and the same package built elsewhere must be the
    same file."""
    on_host = recipe.build_for("stage3").built_on_host(compiler.split()[0] if compiler else "")  # "clang version 14…"
    info = {"stage": "stage3", "recipe_sha256": tree_digest(recipe.path),
            "sources": [{"file": s.filename, "sha256": s.sha256, "url": s.url, "debian": s.debian or "",
                         "repacked": s.repacked} for s in recipe.sources],
            "patches": [patch_info(p) for p in recipe.patches_for("stage3")],
            "build_depends": list(recipe.depends),
            "seed": {k: seed[k] for k in ("suite", "key", "clang", "packages_digest")}}
    if recipe.source_dir:
        info["source_dir"] = f"recipes/{recipe.name}/{recipe.source_dir.relative_to(recipe.path).as_posix()}"
    if on_host:  # built in stage 0 by the stage1 toolchain (the intermediate musl)
        info.update(compiler=f"{seed['clang']} (stage1 toolchain)", flags={"CFLAGS": cflags})
    else:
        info.update(compiler=compiler, flags={r.flag: r.status for r in flag_results})
    return info


def resolve(manifests: dict[str, Manifest]) -> dict[str, dict[str, list[str]]]:
    """Fill each manifest's run-time `depends` from what its files need and who provides it;
    returns what nobody provides, per package."""
    by_soname = {s: m.name for m in manifests.values() for s in m.provides}
    by_path = {f.path: m.name for m in manifests.values() for f in m.files if f.type != "dir"}
    unresolved: dict[str, dict[str, list[str]]] = {}
    for m in manifests.values():
        deps = set()
        for need, files in m.needs.items():
            kind, value = need.split(":", 1)
            provider = by_soname.get(value) if kind == "soname" else by_path.get(value)
            if provider is None:
                unresolved.setdefault(m.name, {})[need] = files
            elif provider != m.name:
                deps.add(provider)
        m.depends = sorted(deps)
    return unresolved


def flag_records(manifests: dict[str, Manifest], where: dict[str, dict[str, Path]],
                 results: list[tuning.FlagResult], logs: dict[str, Path | None] | None = None) -> list[CheckRecord]:
    """For each package built in the chroot and each flag the profile asks for, one record:
    - the compiler cannot honour it (rejected, or accepted without effect): xfail, the verdict its reason;
    - honoured, and it leaves a mark: the package must show it, fail otherwise: a linker flag in
      every dynamic ELF file, a compiler flag in at least one (it marks only the functions it applies to);
      where a compiler flag that marks only some functions shows nowhere, the package's build log
      (`logs`) tells: the flag on every compile command passes, else it fails;
    - honoured, but there is no mark to look for, or no ELF file that could carry it: skip."""
    records = []
    for m in manifests.values():
        applied = m.build.get("flags", {})
        files = [where[m.name][f.path] for f in m.files if f.type == "file"]
        # A static library's objects carry a compiler flag's marks too (compiler-rt's builtins).
        elves = [elf_info(p) for p in files if is_elf(p)] + [i for p in files if is_archive(p) for i in archive_info(p)]
        log = (logs or {}).get(m.name)
        for r in results:
            if r.flag not in applied:
                continue
            records.append(flag_record(m.name, r, [i for i in elves if not i.static or r.kind == "cflags"],
                                       log.read_text(errors="replace") if log and log.is_file() else None))
    return records


def flag_record(package: str, r: tuning.FlagResult, elves: list[ElfInfo], log: str | None = None) -> CheckRecord:
    """One flag in one package's ELF files (those it could mark), and its build log's text where the
    files cannot tell; see flag_records."""
    check = f"flag:{r.flag}"
    if r.status != "honored":
        return expected_failure(CheckRecord("stage4", check, package, False, f"compiler: {r.status}"),
                                f"{r.status}: {r.detail}")
    mark = tuning.mark_name(r.flag)
    if mark is None:
        return skipped("stage4", check, package, f"honored, but {r.flag} leaves no mark to look for in an ELF file")
    if not elves:
        return skipped("stage4", check, package, f"no {'dynamic ' if r.kind == 'ldflags' else ''}ELF file that "
                                                 f"could show {mark}")
    shown = sum(bool(tuning.shows(r.flag, i)) for i in elves)
    ok = shown == len(elves) if r.kind == "ldflags" else shown > 0
    detail = f"compiler: honored; {shown} of {len(elves)} ELF files show {mark}"
    if ok:
        return CheckRecord("stage4", check, package, True, detail)
    marks = tuning.marks_only(r.flag) if r.kind == "cflags" else None
    if marks is None:
        return CheckRecord("stage4", check, package, False, detail + f" (a {'linker' if r.kind == 'ldflags' else 'compiler'}"
                           f" flag must leave it in {'every one' if r.kind == 'ldflags' else 'at least one'})")
    # It marks only some functions: none here may be one. The build log says whether it was there.
    if log is None:
        return CheckRecord("stage4", check, package, False, detail + f"; it marks only {marks}, and no build log "
                           "is kept with this build to show that the flag was on its compiles")
    compiles = tuning.compile_commands(log)
    lacking = [c for c in compiles if r.flag not in c]
    if not compiles or lacking:
        return CheckRecord("stage4", check, package, False, detail + "; and its build log shows "
                           + (f"{len(lacking)} of {len(compiles)} compile commands without it, the first: "
                              f"{' '.join(lacking[0])[:200]}" if lacking else "no compile command to check"))
    return CheckRecord("stage4", check, package, True, detail + f": it marks only {marks}, and none is here; the flag "
                       f"is on every compile command in its build log ({len(compiles)} of {len(compiles)})")


def manifest_of(recipe: Recipe, tree: Path, build: dict) -> tuple[Manifest, dict[str, Path]]:
    """The package of one stage 3 build (`tree`, its installed files), and where each file is."""
    files, where = scan_tree(tree, ROOT_LINKS)
    needs, provides = needs_of(files, where, ROOT_LINKS)
    return Manifest(name=recipe.name, version=recipe.version, release=recipe.release, license=recipe.license,
                    summary=recipe.summary, homepage=recipe.homepage, files=files, needs=needs, provides=provides,
                    build=build), where


def yield_applet_links(manifests: dict[str, Manifest]) -> list[CheckRecord]:
    """busybox's applet links are a fallback: where another package ships the program itself
    (llvm's `strings`), busybox's package leaves that path to it, as the stage 3 root has it (the
    later package's file won there). One record names each link given up."""
    busybox = manifests.get("busybox")
    if busybox is None:
        return []
    owners = {f.path: m.name for m in manifests.values() if m is not busybox for f in m.files if f.type != "dir"}
    given = [f for f in busybox.files if f.type == "link" and Path(f.target).name == "busybox" and f.path in owners]
    if not given:
        return []
    busybox.files = [f for f in busybox.files if f not in given]
    return [CheckRecord("stage4", "applet-yields", "busybox", True,
                        "; ".join(f"{f.path}: {owners[f.path]}'s program, not busybox's applet" for f in given))]


def judge(manifests: dict[str, Manifest], where: dict[str, dict[str, Path]], flag_results: list[tuning.FlagResult],
          exceptions: list[policy.Waiver], allowed: list[str] | None, forbidden: list[str],
          unresolved: dict[str, dict[str, list[str]]], logs: dict[str, Path | None]) -> list[CheckRecord]:
    """The policies over every package, then each tuning flag in each package built in the chroot
    (`logs`: each one's build log, kept in the build cache)."""
    checks = policy.check_policies([policy.Package(m, where[m.name]) for m in manifests.values()], exceptions,
                                   allowed=allowed, forbidden=forbidden, unresolved=unresolved)
    return checks + flag_records({n: m for n, m in manifests.items() if n != "filesystem"}, where, flag_results, logs)


def preview(work_dir: Path, recipes_dir: Path, packages: list[str], allowed_tree: list[str] | None = None,
            policy_exceptions: list[dict] | None = None, cflags: str = "") -> tuple[list[CheckRecord], list[str]]:
    """Stage 4's policy and flag checks over what stage 3 has built so far in `work_dir` (the newest
    build of each of `packages` in its build cache), before stage 3 has finished: a long profile
    learns of a package stage 4 will refuse hours earlier. Returns the records and the packages
    not built yet. Nothing is written to the work directory."""
    cache = work_dir / "cache" / CACHE
    newest: dict[str, Path] = {}
    # Stage 3's own builds, newest last; one another stage filled (the same build) where none is.
    for size in sorted(cache.glob("*/size.json"), key=lambda p: (json.loads(p.read_text()).get("stage") == "stage3",
                                                                 p.stat().st_mtime)):
        name = json.loads(size.read_text()).get("package", "")
        if name in packages:
            newest[name] = size.parent
    compiler, flag_results = tuning.load(work_dir / "stage3" / "flags.json")
    recipes = load_recipes(recipes_dir, list(newest))
    # An exception for a package not built yet would match nothing for now: it waits.
    exceptions = [e for e in policy.parse_exceptions(policy_exceptions or [])
                  if any(fnmatch.fnmatch(n, e.package) for n in newest)]
    seed = dict.fromkeys(("suite", "key", "clang", "packages_digest"), "")  # a preview records no package
    with tempfile.TemporaryDirectory(prefix="serpent-preview-") as tmp:
        manifests, where = {}, {}
        manifests["filesystem"], where["filesystem"] = filesystem_package(Path(tmp) / "filesystem")
        for name, entry in newest.items():
            build = build_info(recipes[name], flag_results, compiler, cflags, seed)
            manifests[name], where[name] = manifest_of(recipes[name], entry / "dest", build)
        checks = yield_applet_links(manifests)
        checks += judge(manifests, where, flag_results, exceptions, allowed_tree, [str(work_dir), "/serpent/"],
                        resolve(manifests), {n: BuildCache.log_in(entry) for n, entry in newest.items()})
    return checks, [n for n in packages if n not in newest]


def write_package_table(path: Path, manifests: dict[str, Manifest], repo: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["package", "version", "release", "license", "files", "installed_bytes", "package_bytes",
                    "depends", "dependency_count", "build_depends", "wildebeest_parts"])
        for m in manifests.values():
            w.writerow([m.name, m.version, m.release, m.license, len(m.files), m.installed_size,
                        (repo / m.filename).stat().st_size, " ".join(m.depends), len(m.depends),
                        " ".join(m.build.get("build_depends", [])), " ".join(m.build.get("wildebeest_parts", []))])


@stage_function
def stage4(params: StageParams) -> StageResult:
    """Package stage 3, write the repository, install `<work>/stage4/root` from it and check it
    (`params.compiler`: stage 3's final compiler, tcc or clang, which the root's checks build with)."""
    exceptions = policy.parse_exceptions(params.policy_exceptions)
    cflags, compiler = params.cflags, params.compiler
    st = begin("stage4", params, after=("stage1", "stage2", "stage3"))
    stage3 = st.base / "stage3"
    keys = stage_marker(stage3)["packages"]
    names = params.packages or list(keys)
    missing = [n for n in names if n not in keys]
    if missing:
        raise SerpentError(f"stage4: {', '.join(missing)} not built by stage 3 in {st.base}",
                                  "list only stage 3's packages, or add them to stage 3")
    recipes = st.recipes(names)
    compiler_version, flag_results = tuning.load(stage3 / "flags.json")
    built_by = json.loads((stage3 / COMPILERS).read_text()) if (stage3 / COMPILERS).is_file() else {}
    cache = BuildCache(st.base / "cache" / CACHE)
    manifests: dict[str, Manifest] = {}
    where: dict[str, dict[str, Path]] = {}
    store = KeyStore()
    kid = store.signing_key_or_new()[0]
    signer = store.public()[kid]
    fs, where["filesystem"] = filesystem_package(st.work / "filesystem", (signer,))
    manifests["filesystem"] = fs
    for name in names:
        hit = cache.get(keys[name])
        if hit is None:
            raise SerpentError(f"stage4: the stage 3 build of {name} is gone from {cache.root}",
                                      "rebuild it: serpent run --stage 3")
        recipe = recipes[name]
        with timed(st.record, Step("stage4", name, recipe.version, "manifest")):
            manifests[name], where[name] = manifest_of(recipe, hit[0], build_info(recipe, flag_results, compiler_version,
                                                                                  cflags, st.seed.facts()))
            if built_by.get(name):  # as stage 3 asked the build's own $CC
                manifests[name].build["compiler"] = built_by[name]
            if "libwildebeest" in recipe.depends:
                parts = parts_used(where[name].values())
                manifests[name].build["wildebeest_parts"] = ["(no symbol table)"] if parts is None else parts
        st.keys[name], st.outputs[name] = keys[name], cache.output(keys[name])
    yielded = yield_applet_links(manifests)
    unresolved = resolve(manifests)
    repo = st.work / "repo"
    for m in manifests.values():
        with timed(st.record, Step("stage4", m.name, m.version, "archive")):
            write_archive(m, where[m.name], repo, int(SOURCE_DATE_EPOCH))
    write_index(repo, list(manifests.values()), store)
    write_package_table(st.run / "packages.csv", manifests, repo)

    checks = yielded + judge(manifests, where, flag_results, exceptions, params.allowed_tree, [str(st.base), "/serpent/"],
                             unresolved, {n: cache.build_log(keys[n]) for n in names})
    (st.work / "root").mkdir()
    try:
        with timed(st.record, Step("stage4", "root", "-", "install")):
            installed = Root(st.work / "root").install(Repository(repo), list(manifests), trusted={signer.id: signer})
    except SerpentError as exc:  # e.g. two packages claim a path: the policy table says which
        checks.append(CheckRecord("stage4", "installed-from-repository", "root", False, exc.message))
        return st.finish(checks)
    checks.append(CheckRecord("stage4", "index-signed", "repository", True,
                              f"ed25519 key {signer.id} ({signer.origin}); the root trusts it: /{ROOT_KEYS}/{signer.id}.pub"))
    checks += check_root(st, installed, list(manifests), names, compiler)
    if params.boot:
        checks += boot_checks(st, names, final_compiler(compiler).env(), params.boot_timeout)
    with timed(st.record, Step("stage4", "root", "-", "sbom")):
        sbom.write_documents(repo, st.run / "sbom", int(SOURCE_DATE_EPOCH), root=st.work / "root",
                             root_name=f"serpent-{st.recorder.profile or 'custom'}-root")
    return st.finish(checks)


def check_root(st: StageRun, installed: list[str], everything: list[str], names: list[str],
               compiler: str = "tcc") -> list[CheckRecord]:
    """The fresh root from the repository alone: `pkg verify`, and in a chroot of it, with no
    /serpent, every recipe's checks and sh + make + the compiler building and running a zlib program."""
    root = st.work / "root"
    checks = [CheckRecord("stage4", "installed-from-repository", "root", set(installed) == set(everything),
                          f"{len(installed)} packages into {root}")]
    problems = Root(root).verify()
    for name in everything:
        mine = [f"{p.path}: {p.problem}" for p in problems if p.package == name]
        checks.append(CheckRecord("stage4", "pkg-verify", name, not mine, "; ".join(mine[:5]) or "every file matches"))
    builds = st.work / "build"
    builds.mkdir(exist_ok=True)
    alone = Chroot(root, builds).sandbox(final_compiler(compiler).env(), serpent=False)
    logs = st.logs / "checks"
    commands = {f"stands alone: sh, make and {compiler} build a zlib program": (STANDALONE, "serpent stage4 stands alone")}
    commands.update(st.recipe_checks(names))
    checks += check_in_root("stage4", alone, commands, logs)
    shutil.rmtree(builds, ignore_errors=True)
    return checks


def boot_checks(st: StageRun, names: list[str], env: dict[str, str], timeout: float = 0.0) -> list[CheckRecord]:
    """The root as a disk image (<work>/stage4/boot/root.img), booted by QEMU with its own kernel;
    every recipe's checks run inside it. The console log goes with the run's logs
    (logs/stage4/boot/console.log), the boot's events to boot.csv (and boot-units.csv)."""
    try:
        with timed(st.record, Step("stage4", "root", "-", "boot")):
            booted, records, rows = boot.boot_root(st.seed, st.work / "root", st.recipe_checks(names),
                                                   st.work / "boot", st.logs / "boot", timeout=timeout, env=env)
    except SerpentError as exc:
        return [CheckRecord("stage4", "boots", "qemu", False, str(exc).replace("\n", " "))]
    boot.write_tables(st.run, booted, rows)
    return records
