"""clang as stage 3's final compiler (the full profile): its environment in the chroot, and its
checks: C and C++ programs built and run in the root alone, the byte fixpoint (the stage 3 clang
rebuilds LLVM; the result must equal what it was built from) and LLVM's own lit suites, one
record per test."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from ..build.phases import PackageBuild, StageContext
from ..build.recipes import Recipe
from ..build.sandbox import Sandbox
from ..elf import elf_info, is_elf
from ..files import walk
from ..hashes import digest
from ..records.reproduce import compare_trees, tree_paths
from ..rows import CheckRecord, Step, expected_failure, skipped
from .common import StageRun, native_common
from .layout import Chroot

log = logging.getLogger(__name__)

# What a build with -g (Python's, ninja's) records of /serpent's headers names them where the
# root has its own: /usr/include/c++/v1, /usr/lib/clang/14.0.6/include.
SERPENT_MAP = "-ffile-prefix-map=/serpent/=/"


class Clang:
    """clang + lld + libc++ built natively: the full profile's final compiler."""

    name = "clang"
    # Until stage 3 builds its own LLVM, these lead to /serpent's, as /usr/bin/sh leads to its dash
    # (the seed's way): recipes that name /usr/bin/clang (the LLVM runtimes) build in the chroot too.
    serpent_links = ("dash:sh", "clang", "clang++", "llvm-ar", "llvm-ranlib", "llvm-nm")
    tools = ("clang++", "ld.lld", "cmake", "ninja", "python3")  # on PATH at /usr/bin once built
    prefix_map = SERPENT_MAP
    keep_trees = frozenset({"llvm"})  # the fixpoint, now or in a later run, compares its objects
    version_command = "clang --version | head -1"

    def env(self, serpent: bool = False) -> dict[str, str]:
        """/serpent's LLVM programs need /serpent's libc++ until the root has its own, as the seed's
        LD_LIBRARY_PATH did (`serpent`: while /serpent is mounted)."""
        env = {"CC": "clang", "CXX": "clang++", "AR": "llvm-ar", "RANLIB": "llvm-ranlib", "NM": "llvm-nm",
               "STRIP": "llvm-strip", "OBJCOPY": "llvm-objcopy", "READELF": "llvm-readelf",
               "CFLAGS": f"-O2 -pipe {SERPENT_MAP}", "CXXFLAGS": f"-O2 -pipe {SERPENT_MAP}"}
        if serpent:
            env["LD_LIBRARY_PATH"] = "/serpent/usr/lib"
        return {**env, **native_common()}

    def checks(self, st: StageRun, chroot: Chroot, alone: Sandbox, build_env: dict[str, str]) -> list[CheckRecord]:
        """Programs in the root alone; then LLVM rebuilt by the root's clang, for the fixpoint and
        lit (`build_env`: as the packages were built, tuning flags included)."""
        logs = st.logs / "checks"
        checks = check_programs(st.name, chroot, alone, logs)
        if not st.params.fixpoint and not st.params.lit_suites:
            return checks
        # Both are about this LLVM build alone: kept under its key and its output's digest, they are
        # replayed (each record naming the run that made it) when only packages after it changed,
        # instead of a second native LLVM build of hours.
        key = "fixpoint-" + st.keys["llvm"]
        records_key = digest(key, st.params.fixpoint, list(st.params.lit_suites))
        use = st.params.use_cache and not st.params.recheck
        listing = st.run / FIXPOINT_LISTING
        st.check_files.append(listing)  # kept with the stage's checks too, for a run that replays them all
        kept = st.cache.get_checks(records_key, st.outputs["llvm"], files=st.run) if use else None
        if kept is not None:
            log.info("stage3: the fixpoint and lit records of this LLVM build are those of run %s",
                     kept[0].get("cached_from") if kept else "?")
            return checks + [CheckRecord.replayed(r) for r in kept]
        # The rebuild is the fixpoint's and lit's tree both; it resumes like a package build.
        llvm = st.recipes(["llvm"])["llvm"]
        env = {k: v for k, v in build_env.items() if k != "LD_LIBRARY_PATH"}  # nothing from /serpent
        ctx = replace(st.context(chroot.builds / "llvm-fixpoint-root", alone, env, inside=chroot.inside,
                                 keep_build_trees=True, on_record=st.record, host_sandbox=st.seed_sandbox()),
                      logs=logs)
        found, build = check_fixed_point(ctx, chroot, llvm, key=key, listing=listing)
        found = found if st.params.fixpoint else []
        for record in found[:1]:
            log.info("stage3 fixpoint: %s: %s", record.outcome, record.detail[:300])
        found += check_lit(st.name, build, alone, st.params.lit_suites, st.jobs, logs)
        # The rebuild's tree (2 GB) goes once its records pass; after a failure it stays, so that the
        # next run resumes it (ninja has nothing left to do) instead of building LLVM again for hours.
        if build is not None and not any(c.fails for c in found):
            shutil.rmtree(build.root, ignore_errors=True)
            run_id = st.recorder.run_id or st.run.name
            st.cache.put_checks(records_key, [{**asdict(c), "cached_from": c.cached_from or run_id} for c in found],
                                st.outputs["llvm"], files=[listing] if listing.is_file() else [])
        return checks + found

# Written here, not in the tests: a program the suite did not know beforehand.
PROGRAMS = {
    "c": ("c", r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) { char *s = strdup("c ok"); puts(s); free(s); return 0; }
"""),
    "cxx": ("cc", r"""#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>
struct Base { virtual ~Base() = default; };
struct Derived : Base {};
int main() {
    int caught = 0;
    try { throw std::runtime_error("boom"); } catch (const std::exception &e) { caught = std::string(e.what()) == "boom"; }
    std::unique_ptr<Base> b = std::make_unique<Derived>();
    bool rtti = dynamic_cast<Derived *>(b.get()) != nullptr && typeid(*b) == typeid(Derived);
    std::mutex m; std::map<int, int> squares; std::vector<std::thread> pool;
    for (int i = 0; i < 4; ++i) pool.emplace_back([&, i] { std::lock_guard<std::mutex> g(m); squares[i] = i * i; });
    for (auto &t : pool) t.join();
    std::ostringstream out; out << "c++ ok " << caught << rtti << squares[3];
    std::cout << out.str() << std::endl;
}
"""),
}
EXPECTED = {"c": "c ok", "cxx": "c++ ok 119"}
ROOT_LIBS = ("libc++.so.1", "libc++abi.so.1", "libunwind.so.1", "libc.so")


def check_programs(stage: str, chroot: Chroot, alone: Sandbox, logs: Path) -> list[CheckRecord]:
    """C and C++ (exceptions, threads, iostreams, RTTI), static and dynamic, compiled by the
    root's clang with no flags and run in the root without /serpent; their interpreter is
    musl's, their NEEDED resolve inside the root, and no host or /serpent path is in them."""
    root, where = chroot.root, chroot.builds / "programs"
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    records = []
    for name, (ext, text) in PROGRAMS.items():
        (where / f"{name}.{ext}").write_text(text)
        cc = "clang" if ext == "c" else "clang++"
        for link in ("dynamic", "static"):
            out = f"{name}-{link}"
            flag = " -static" if link == "static" else ""
            log_file = logs / f"program-{out}.log"
            rec = alone.run(f"set -e; cd /build/programs; {cc}{flag} -O2 -o {out} {name}.{ext}; ./{out}", cwd="/",
                            log=log_file, step=Step(stage, phase="check"))
            said = log_file.read_text(errors="replace")
            ok = rec.exit_code == 0 and EXPECTED[name] in said
            records.append(CheckRecord(stage, "clang-program", out, ok,
                                       f"exit {rec.exit_code}; {said.splitlines()[-1][:120] if said else ''!r}"))
            if (where / out).is_file():
                records.append(_elf_record(stage, root, where / out, link))
    # What build systems ask the compiler about the system (Python's configure stops on a wrong one).
    log_file = logs / "clang-multiarch.log"
    rec = alone.run("clang -print-multiarch", cwd="/", log=log_file, step=Step(stage, phase="check"))
    said = log_file.read_text(errors="replace").strip()
    records.append(CheckRecord(stage, "clang-multiarch", "clang -print-multiarch",
                               rec.exit_code == 0 and said.splitlines()[-1:] == ["x86_64-linux-musl"],
                               f"exit {rec.exit_code}; {said[-120:]!r} (musl's is x86_64-linux-musl)"))
    shutil.rmtree(where, ignore_errors=True)
    return records


def _elf_record(stage: str, root: Path, path: Path, link: str) -> CheckRecord:
    info = elf_info(path)
    problems = []
    if link == "static":
        if info.interpreter or info.needed:
            problems.append(f"static yet interpreter {info.interpreter} needed {list(info.needed)}")
    else:
        if info.interpreter != "/lib/ld-musl-x86_64.so.1":
            problems.append(f"interpreter {info.interpreter}")
        for lib in info.needed:
            if not any((root / d / lib).exists() for d in ("usr/lib", "lib")):
                problems.append(f"{lib} not in the root")
    data = path.read_bytes()
    for bad in (b"/serpent", b"x86_64-linux-gnu", b"ld-linux"):
        if bad in data:
            problems.append(f"names {bad.decode()}")
    return CheckRecord(stage, "clang-program-elf", path.name, not problems,
                       "; ".join(problems) or f"interpreter {info.interpreter}; needs {', '.join(info.needed) or 'nothing'}")


def _rebuild(ctx: StageContext, llvm: Recipe, key: str) -> tuple[Path, PackageBuild]:
    """LLVM built again by the root's own clang, as the recipe builds it, into a scratch root
    (`ctx.install_root`); its tree is kept (lit runs in it) and resumes like any build under the
    same `key`. As in the stage's own build, its patches are applied outside the chroot
    (`ctx.host_sandbox`: stage 0)."""
    again = replace(llvm, name="llvm-fixpoint")
    shutil.rmtree(ctx.install_root, ignore_errors=True)
    ctx.install_root.mkdir(parents=True)
    build = PackageBuild(again, ctx, key, paced_like=llvm.name)
    build.run()
    return ctx.install_root, build


def objects(objdir: Path) -> list[str]:
    """The object files of a build tree, relative to it."""
    return [e.rel for e in walk(objdir) if e.name.endswith(".o") and not e.is_dir]


# What a link adds besides the objects: from the resource directory of the clang that links.
LINK_RUNTIME = "usr/lib/clang/14.0.6/lib/linux"


def check_fixed_point(ctx: StageContext, chroot: Chroot, llvm: Recipe, key: str, listing: Path | None = None
                      ) -> tuple[list[CheckRecord], PackageBuild | None]:
    """GCC's stage 2 / stage 3 compare: the stage 3 clang (built by stage 2's) rebuilds LLVM with
    the same options (its build tree's path mapped away), in the chroot `ctx` describes; every
    installed file must equal the root's own. Where they differ, the object files of both build
    trees are compared too (the stage's LLVM tree is kept for this): identical objects put the
    difference in what the links add. The rebuild's phases are recorded as package `llvm-fixpoint`."""
    try:
        dest, build = _rebuild(ctx, llvm, key)
    except Exception as exc:  # noqa: BLE001 - a failed rebuild is this check's failure, with its log
        return [CheckRecord(ctx.stage, "fixed-point", "llvm", False, f"the rebuild failed: {exc}")], None
    return judge_fixed_point(ctx.stage, chroot.root, dest, chroot.serpent, chroot.builds / "llvm" / "build",
                             build.objdir, listing), build


def judge_fixed_point(stage: str, root: Path, dest: Path, serpent: Path, first: Path, second: Path,
                      listing: Path | None = None) -> list[CheckRecord]:
    """The fixpoint's records: the rebuild's installed files (`dest`) against the root's; where they
    differ, the object files of the stage's build tree (`first`) against the rebuild's (`second`).
    `listing`: a CSV written there names every entry compared, as the root and the rebuild hold it."""
    # Only what the rebuild installs is compared: the root holds much more.
    installed = tree_paths(dest)
    if not installed:  # nothing compared proves nothing
        return [CheckRecord(stage, "fixed-point", "llvm", False, f"the rebuild installed nothing into {dest}")]
    kinds = Counter("link" if e.is_link else "dir" if e.is_dir else "file" for e in walk(dest))  # no hashing: compare_trees does
    diff = compare_trees(stage, root, dest, Path("/build/llvm"), Path("/build/llvm-fixpoint"), paths=installed)
    bad = diff.differing
    elves = [p for p in bad["path"] if is_elf(dest / p.lstrip("/"))]
    listed = ""
    if listing is not None:
        listing.parent.mkdir(parents=True, exist_ok=True)
        diff.entries.rename(columns={"a": "root", "b": "rebuild"}).to_csv(listing, index=False)
        listed = f"; each entry, with the root's and the rebuild's sha256, in {listing.name}"
    detail = (f"{diff.files} installed entries compared ({kinds['file']} files, {kinds['link']} links, "
              f"{kinds['dir']} directories: contents, targets and modes); "
              + (f"{len(bad)} differ ({len(elves)} ELF): {', '.join(bad['path'][:8])}" if len(bad) else "identical")
              + listed)
    if bad.empty:
        return [CheckRecord(stage, "fixed-point", "llvm", True, detail)]
    records = [CheckRecord(stage, "fixed-point-file", r.path, False, r.cause) for r in bad.head(50).itertuples()]
    if not first.is_dir():
        return [CheckRecord(stage, "fixed-point", "llvm", False, detail + f"; no {first} to compare objects "
                            "with (the stage's LLVM came from the cache of a run that did not keep it)")] + records
    # The stage's objects, each of which the rebuild must have made the same (lit may have built
    # more in the rebuild's tree: its test tools).
    objs = compare_trees(stage, first, second, Path("/build/llvm"), Path("/build/llvm-fixpoint"), paths=objects(first))
    same_objects = objs.differing.empty and objs.files > 0
    records.append(CheckRecord(stage, "fixed-point-objects", "llvm", same_objects,
                               f"{objs.identical} of {objs.files} object files identical"
                               + "".join(f"; {r.path}: {r.cause}" for r in objs.differing.head(5).itertuples())))
    runtime = compare_trees(stage, serpent / LINK_RUNTIME, root / LINK_RUNTIME, serpent, root)
    if same_objects and len(elves) == len(bad) and not runtime.differing.empty:
        # As GCC compares objects, not linked programs: the links took crt objects and builtins from
        # the clang that linked, /serpent's for the stage's build, the root's for the rebuild.
        why = ("every object file is identical; the programs differ in what their link adds: the stage's "
               "LLVM was linked by /serpent's clang with stage 2's crtbegin, crtend and compiler-rt builtins, "
               f"the rebuild by the root's with its own, and those differ ({', '.join(runtime.differing['path'])})")
        return [expected_failure(r, why) if r.check != "fixed-point-objects" else r
                for r in [CheckRecord(stage, "fixed-point", "llvm", False, detail)] + records]
    return [CheckRecord(stage, "fixed-point", "llvm", False, detail)] + records


FIXPOINT_LISTING = "fixpoint-llvm.csv"  # in the run directory: every entry the fixpoint compared

# Tests of LLVM's suites that cannot pass here, each with its reason; they are run all the same.
# None now: lit once ran as a root that kept the access a test's `chmod` takes away (three of lld's
# LTO tests); the sandbox drops every capability, so `chmod` holds for it as for anyone.
LIT_EXPECTED_FAILURES: dict[str, str] = {}


def check_lit(stage: str, build: PackageBuild | None, alone: Sandbox, suites: list[str], jobs: int,
              logs: Path) -> list[CheckRecord]:
    """LLVM's own tests, run by lit (the root's Python) in the chroot on the kept build tree:
    one record per test. lit's own XFAIL is an xfail, UNSUPPORTED a skip, each with its reason."""
    if not suites:
        return []
    if build is None:
        return [skipped(stage, "lit", s, "no LLVM build tree to test: the fixpoint rebuild did not finish")
                for s in suites]
    records: list[CheckRecord] = []
    objdir = build.where(build.objdir)
    for suite in suites:  # e.g. lld/test/ELF -> tools/lld/test/ELF in the build tree
        project, _, rest = suite.partition("/")
        path = f"{objdir}/tools/{project}/{rest}" if project in ("lld", "clang") else f"{objdir}/{rest}"
        name = f"lit-{project}-{rest.replace('/', '-')}"
        log_file = logs / f"lit-{suite.replace('/', '-')}.log"
        host_result, host_exit = build.objdir / f"{name}.json", build.objdir / f"{name}.exit"
        for stale in (host_result, host_exit):  # an earlier run's results in the kept tree say nothing now
            stale.unlink(missing_ok=True)
        script = (f"set -e; cd {objdir}; ninja -j{jobs} {_lit_deps(project)}\n"
                  f"set +e; python3 bin/llvm-lit -q -j{jobs} -o {name}.json {path}; echo $? > {name}.exit")
        rec = alone.run(script, cwd="/", log=log_file, step=Step(stage, phase="check"))
        if rec.exit_code != 0 or not host_result.is_file() or not host_exit.is_file():
            records.append(CheckRecord(stage, "lit", suite, False, f"exit {rec.exit_code}; no results; log {log_file}"))
            continue
        tests = lit_records(stage, suite, json.loads(host_result.read_text()))
        records += tests + [lit_suite_record(stage, suite, int(host_exit.read_text().strip() or -1), tests)]
        log.info("lit %s: %d records so far", suite, len(records))
    return records


def lit_suite_record(stage: str, suite: str, code: int, tests: list[CheckRecord]) -> CheckRecord:
    """One record of a whole suite: lit's exit status must say what its tests say (0 when none
    failed; 1 when every failure is one this project expects), and a suite with no test fails."""
    counts = Counter(t.outcome for t in tests)
    said = f"lit exit {code}; {len(tests)} tests: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    if not tests:
        return CheckRecord(stage, "lit-suite", suite, False, f"lit exit {code}; lit found no test in {suite}")
    expected_only = not any(t.fails for t in tests) and any(t.outcome == "xfail" and t.reason != _LIT_XFAIL
                                                         for t in tests)
    return CheckRecord(stage, "lit-suite", suite, code == 0 or (code == 1 and expected_only), said)


def _lit_deps(project: str) -> str:
    """What the suites call besides the compiler: LLVM's test tools."""
    tools = ["FileCheck", "count", "not", "split-file", "yaml2obj", "obj2yaml", "llvm-mc", "llvm-objdump", "llvm-readobj",
             "llvm-readelf", "llvm-nm", "llvm-ar", "llvm-as", "llvm-dis", "llvm-dwarfdump", "llvm-objcopy", "llvm-strip",
             "llvm-config", "llc", "opt", "llvm-bcanalyzer", "llvm-strings", "llvm-symbolizer", "llvm-lto2"]
    # lld's suites: LLVM's own lld-test-depends (a few more tools). Not clang-test-depends: that builds
    # clang's unit tests, libclang and clang-repl. clang++ is no target: building clang makes the link.
    # clang's Driver suite also runs ld.lld, llvm-lto and the offload tools.
    return " ".join(tools + (["lld", "lld-test-depends"] if project == "lld" else
                             ["clang", "clang-resource-headers", "lld", "llvm-lto", "clang-offload-bundler",
                              "clang-offload-wrapper"]))


_LIT_XFAIL = "marked XFAIL for this configuration by LLVM's own test"


def lit_records(stage: str, suite: str, result: dict) -> list[CheckRecord]:
    out = []
    for test in result.get("tests", []):
        name, code = test["name"].split(" :: ", 1)[-1], test["code"]
        subject = f"{suite}: {name}"
        if code == "PASS":
            record = CheckRecord(stage, "lit", subject, True, f"{test.get('elapsed') or 0:.2f} s")
        elif code == "XFAIL":
            record = expected_failure(CheckRecord(stage, "lit", subject, False, "failed, as the test says it does"),
                                      _LIT_XFAIL)
        elif code == "UNSUPPORTED":
            said = (test.get("output") or "").strip().splitlines()  # lit: "Test requires ... features: arm"
            record = skipped(stage, "lit", subject, "UNSUPPORTED: " + (said[0][:200] if said else
                                                                       "the test REQUIRES a feature this build lacks"))
        else:
            record = CheckRecord(stage, "lit", subject, False, f"{code}: {(test.get('output') or '')[-200:]}")
        expected = LIT_EXPECTED_FAILURES.get(subject)
        out.append(expected_failure(record, expected) if expected and code not in ("XFAIL", "UNSUPPORTED") else record)
    return out
