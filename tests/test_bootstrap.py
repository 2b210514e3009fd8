"""The whole mini profile, for real, through papermill as `serpent run` does it (minutes)."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from serpentlib.pkg import policy
from serpentlib.build.profile import load_profile
from serpentlib.paths import PROJECT
from serpentlib.build.sandbox import Bind, Sandbox
from serpentlib.build.seed import SeedSpec
from serpentlib.rows import FAILING

from .conftest import APT_BEFORE_AND_AFTER, serpent, tree_digest

pytestmark = pytest.mark.build
PROFILE = load_profile("mini")


@pytest.fixture(scope="module")
def run(mini_run):
    return mini_run


def processes_in(work_dir):
    """Pids whose root, cwd or SERPENT_WORK_LOCK lies in `work_dir`: the kernel and every build under it."""
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            places = [os.readlink(f"/proc/{proc}/root"), os.readlink(f"/proc/{proc}/cwd")]
            environ = open(f"/proc/{proc}/environ", "rb").read()
        except OSError:
            continue
        if any(p.startswith(str(work_dir)) for p in places) or f"SERPENT_WORK_LOCK={work_dir}".encode() in environ:
            found.append(int(proc))
    return found


def table(run_dir, name, stage=None):
    df = pd.read_csv(run_dir / f"{name}.csv")
    return df if stage is None else df[df["stage"] == stage]


def test_run_succeeds(run):
    proc, run_dir, _ = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["stages"] == {"1": "passed", "2": "passed", "3": "passed", "4": "passed"}
    seed = info["seed"]  # stage 0 is recorded: suite, key, the seed compiler and its versions
    assert seed["suite"] == "bookworm" and seed["clang"].startswith("Debian clang version 14.")
    assert seed["versions"]["clang-14"] and seed["versions"]["libc6"]
    # The kernels' own chatter goes to the run's logs, not into what the user reads.
    assert "[IPKernelApp]" not in proc.stdout + proc.stderr
    assert all((run_dir / "logs" / f"kernel-stage{n}.log").is_file() for n in (1, 2, 3, 4))


def test_make_bootstrap_leaves_the_hosts_apt_configuration_alone(run):
    assert APT_BEFORE_AND_AFTER["before"] == APT_BEFORE_AND_AFTER["after"]


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_every_package_built_and_recorded(run, stage):
    _, run_dir, _ = run
    phases = table(run_dir, "phases", f"stage{stage}")
    wanted = PROFILE.parameters(stage)["packages"]
    assert set(phases["package"]) == set(wanted)
    assert (phases["exit_code"] == 0).all()
    # Stage 3's intermediate musl and its kernel headers, built on the host, are stage 2's builds
    # to the byte (the same recipe, environment, sandbox and inputs): one build, taken from the cache.
    shared = {"musl", "linux-headers"} if stage == 3 else set()
    run_id = json.loads((run_dir / "run.json").read_text())["run_id"]
    for package in wanted:
        mine = phases[phases["package"] == package]
        if package in shared:
            assert list(mine["phase"]) == ["cached"] and list(mine["from_run"]) == [run_id], mine
        else:
            assert {"fetch", "extract", "install", "merge"} <= set(mine["phase"]), mine
    sizes = table(run_dir, "sizes", f"stage{stage}")
    assert set(sizes["package"]) == set(wanted) and (sizes["installed_bytes"] > 0).all()
    # Each package names the compiler its build's $CC was, and whose: stage 0's clang builds stage 1,
    # stage 1's wrappers stage 2 and what stage 3 builds on the host, /serpent's or the root's own the rest
    whose = {1: ["stage 0's (the seed)"], 2: ["stage 1's wrapper"],
             3: ["stage 1's wrapper", "under /serpent", "the stage3 root's own"]}[stage]
    said = dict(zip(sizes["package"], sizes["compiler"]))
    assert all(any(w in c for w in whose) for c in said.values()), said
    assert not any(str(run[2]) in c for c in said.values()), "the work directory is <work>: the same build says the same"
    if stage == 3:
        assert "stage 1's wrapper" in said["linux"] and "tcc version" in said["zlib"], said
        # tcc is built by /serpent's tcc, not by the tcc it installs; what comes after, by the root's own
        assert "under /serpent" in said["zlib"] and "under /serpent" in said["tcc"], said
        assert "the stage3 root's own" in said["anacron"], said


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_all_checks_pass(run, stage):
    _, run_dir, _ = run
    checks = table(run_dir, "checks", f"stage{stage}")
    assert len(checks) > 5
    failed = checks[checks["outcome"].isin(FAILING)]
    assert failed.empty, failed.to_string()
    # `passed` never says more than happened: True for a check that ran and held, never for an xfail or skip
    assert (checks["passed"] == checks["outcome"].isin(["pass", "xpass"])).all()


def test_stage1_toolchain(run):
    _, run_dir, work_dir = run
    checks = table(run_dir, "checks", "stage1")
    assert set(checks[checks["check"] == "runs"]["subject"]) == {
        "hello-c-dynamic", "hello-c-static", "cxx-eh-thread-dynamic", "cxx-eh-thread-static"}
    sysroot, bindir = work_dir / "stage1" / "sysroot", work_dir / "stage1" / "bin"
    for lib in ("usr/lib/libc.so", "usr/lib/libc++.so.1", "usr/lib/libc++abi.so.1", "usr/lib/libunwind.so.1",
                "usr/include/linux/version.h"):
        assert (sysroot / lib).exists(), lib
    assert (sysroot / "lib" / "ld-musl-x86_64.so.1").readlink().as_posix() == "/usr/lib/libc.so"
    for tool in ("clang", "clang++"):
        assert (bindir / f"x86_64-serpent-linux-musl-{tool}").stat().st_mode & 0o111


def test_stage2_root(run):
    _, run_dir, work_dir = run
    root = work_dir / "stage2" / "root"
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib"), ("sbin", "usr/bin")):
        assert (root / link).readlink().as_posix() == target
    for tool in ("bash", "dash", "make", "tcc", "busybox"):
        assert (root / "usr" / "bin" / tool).is_file(), tool
    assert (root / "usr" / "bin" / "sh").readlink().as_posix() == "dash"
    checks = table(run_dir, "checks", "stage2")
    assert (checks["check"] == "runs-in-root").sum() >= 8


def test_stage3_final_compiler(run):
    _, run_dir, work_dir = run
    checks = table(run_dir, "checks", "stage3").set_index(["check", "subject"])
    assert checks.loc[("fixed-point", "tcc"), "passed"]
    assert checks.loc[("runs-in-root", "tools resolve to /usr/bin"), "passed"]
    root = work_dir / "stage3" / "root"
    assert (root / "usr" / "bin" / "sh").readlink().as_posix() == "dash", "stage3's own dash replaced /serpent's"
    phases = table(run_dir, "phases", "stage3")
    assert set(phases[phases["phase"] == "check"]["package"]) >= {"zlib", "xz"}


def test_stage3_records_tcc_expected_failures_as_xfail_with_their_reasons(run):
    from serpentlib.stages.tcc import TCC_EXPECTED_FAILURES
    _, run_dir, _ = run
    checks = table(run_dir, "checks", "stage3")
    suite = checks[checks["check"] == "tcc-test-suite"].set_index("subject")
    for test, reason in TCC_EXPECTED_FAILURES.items():
        assert (suite.loc[test, "outcome"], suite.loc[test, "reason"]) == ("xfail", reason), test
    others = suite.drop(index=list(TCC_EXPECTED_FAILURES))
    assert len(others) > 100 and (others["outcome"] == "pass").all(), others[others["outcome"] != "pass"]



ASM_TRAMPOLINES = {  # tcc's tests/asm-c-connect-*.c: each trampoline realigned for the call it makes
    "asm-c-connect-1.c": ('"x1: call "_"x1_c; ret"', '"x1: sub $8,%rsp; call "_"x1_c; add $8,%rsp; ret"'),
    "asm-c-connect-2.c": ('_"callx4: call "_"x4; ret;"', '_"callx4: sub $8,%rsp; call "_"x4; add $8,%rsp; ret;"'),
}


def test_asm_c_connect_fails_for_the_cause_its_xfail_names(run, tmp_path):
    """The xfail's reason, checked: in the stage 3 root, tcc's asm-c-connect program as upstream
    wrote it dies of SIGSEGV; with its two asm trampolines keeping the stack 16-byte aligned it
    prints the expected line."""
    from serpentlib.build.recipes import load_recipes
    from serpentlib.build.sources import SourceStore, extract
    _, _, work_dir = run
    source = load_recipes(PROJECT / "recipes", ["tcc"])["tcc"].sources[0]
    extract(SourceStore().fetch(source).path, tmp_path / "src", source.extract, source.strip)
    for name, (call, realigned) in ASM_TRAMPOLINES.items():
        text = (tmp_path / "src" / "tests" / name).read_text()
        assert text.count(call) == 1, name
        (tmp_path / name).write_text(text)
        (tmp_path / f"aligned-{name}").write_text(text.replace(call, realigned))
    sandbox = Sandbox(root=work_dir / "stage3" / "root", binds=[Bind(tmp_path, "/t", readonly=False)],
                      shell="/usr/bin/bash")
    script = ("tcc -o as-written asm-c-connect-1.c asm-c-connect-2.c; ./as-written; echo as-written $?; "
              "tcc -o aligned aligned-asm-c-connect-1.c aligned-asm-c-connect-2.c && ./aligned")
    rec = sandbox.run(script, cwd="/t", log=tmp_path / "log")
    out = (tmp_path / "log").read_text().splitlines()[1:]
    assert rec.exit_code == 0 and "as-written 139" in out, out  # 128 + SIGSEGV
    assert out[-1] == "* x1 x2 x3 x4 x5 x5 x6-2 x6-1 *", out

def test_stage4_holds_each_package_to_each_flag_and_tcc_honours_none(run):
    from serpentlib.pkg import flags as tuning
    _, run_dir, work_dir = run
    _, results = tuning.load(work_dir / "stage3" / "flags.json")
    verdicts = {f"flag:{r.flag}": f"{r.status}: {r.detail}" for r in results}
    checks = table(run_dir, "checks", "stage4")
    flags = checks[checks["check"].str.startswith("flag:")]
    assert set(flags["check"]) == set(verdicts) and flags["subject"].nunique() >= 8
    assert set(flags["outcome"]) == {"xfail"}, "tcc honours none of mini's flags"
    assert all(reason == verdicts[check] for check, reason in zip(flags["check"], flags["reason"]))


def test_an_unseen_program_compiles_and_runs_in_stage3_without_serpent(run, tmp_path):
    _, _, work_dir = run
    a, b = random.randrange(1000, 9999), random.randrange(1000, 9999)
    src = tmp_path / "prog.c"
    src.write_text('#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
                   f'int main(void) {{ char *s = malloc(64); snprintf(s, 64, "%d", {a} * {b});'
                   ' printf("%s %zu\\n", s, strlen(s)); free(s); return 0; }\n')
    root = work_dir / "stage3" / "root"
    sandbox = Sandbox(root=root, binds=[Bind(tmp_path, "/work", readonly=False)], shell="/usr/bin/bash")
    rec = sandbox.run("cd /work && tcc -o prog prog.c && ./prog", cwd="/", log=tmp_path / "log")
    out = (tmp_path / "log").read_text().splitlines()[1:]
    assert rec.exit_code == 0, out
    assert out == [f"{a * b} {len(str(a * b))}"]
    interp = subprocess.run(["llvm-readelf", "-l", str(tmp_path / "prog")], capture_output=True, text=True).stdout
    assert "/lib/ld-musl-x86_64.so.1" in interp


def test_serpent_shell_runs_in_a_stage_root_that_it_leaves_as_it_was(run, tmp_path):
    """`serpent shell`: the root read-only, a scratch /tmp, /serpent only when asked, the command's
    exit code; nothing of it stays in the root or mounted."""
    _, _, work_dir = run
    root = work_dir / "stage3" / "root"
    before = tree_digest(root)
    script = ("cd /tmp && printf 'int main(void){return 7;}' > t.c && tcc t.c -o t; ./t; echo $?; "
              "test -d /serpent/usr && echo serpent; touch /usr/x 2>/dev/null || echo read-only; exit 4")
    alone = serpent("shell", "--work-dir", str(work_dir), "--", "sh", "-c", script, db=tmp_path / "m.sqlite")
    assert (alone.returncode, alone.stdout.split()) == (4, ["7", "read-only"]), alone.stderr
    with_serpent = serpent("shell", "--work-dir", str(work_dir), "--serpent", "--", "sh", "-c", script,
                           db=tmp_path / "m.sqlite")
    assert with_serpent.stdout.split() == ["7", "serpent", "read-only"], with_serpent.stderr
    assert tree_digest(root) == before and str(work_dir) not in Path("/proc/self/mountinfo").read_text()
    missing = serpent("shell", "--work-dir", str(tmp_path / "none"), db=tmp_path / "m.sqlite")
    assert missing.returncode == 2 and "no stage 3 root" in missing.stderr and "serpent run" in missing.stderr


def test_serpent_shell_runs_in_a_mapped_namespace_and_stage_1_cross_compiles_by_hand(run, tmp_path):
    """Even as root the shell's root maps to one id; `--stage 1` puts the cross compilers on PATH in
    stage 0 with the current directory writable, and what they make runs on musl."""
    _, _, work_dir = run
    mapped = serpent("shell", "--work-dir", str(work_dir), "--", "cat", "/proc/self/uid_map", db=tmp_path / "m.sqlite")
    assert mapped.stdout.split() == ["0", str(os.geteuid()), "1"], mapped.stderr
    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("by hand on musl"); return 0; }\n')
    env = {**os.environ, "SERPENT_METRICS_DB": str(tmp_path / "m.sqlite")}
    made = subprocess.run([sys.executable, "-m", "serpentlib.cli", "shell", "--stage", "1", "--work-dir", str(work_dir),
                           "--", "sh", "-c", "x86_64-serpent-linux-musl-clang -O2 -static hello.c -o hello && "
                           "touch /usr/x 2>/dev/null || echo seed-read-only"],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert made.returncode == 0 and made.stdout.split() == ["seed-read-only"], made.stderr
    assert subprocess.run([str(tmp_path / "hello")], capture_output=True, text=True).stdout == "by hand on musl\n"
    refused = subprocess.run([sys.executable, "-m", "serpentlib.cli", "shell", "--stage", "1", "--work-dir",
                              str(work_dir), "--", "true"], capture_output=True, text=True, cwd="/", env=env)
    assert refused.returncode == 2 and "cd into a directory of your own program's" in refused.stderr


def test_executed_notebooks_have_no_error_and_show_plots(run):
    _, run_dir, _ = run
    for name in ("stage1-toolchain", "stage2-runtime", "stage3-chroot", "stage4-packages"):
        nb = json.loads((run_dir / f"{name}.ipynb").read_text())
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o["output_type"] == "error"], name
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= (2 if name.startswith("stage4") else 3), name
    # Each phase the run recorded has a colour of its own in the plots (none falls back to grey).
    from serpentlib.records.plots import PHASE_COLORS
    phases = set(pd.read_csv(run_dir / "phases.csv")["phase"])
    assert phases <= set(PHASE_COLORS), phases - set(PHASE_COLORS)
    assert len(set(PHASE_COLORS.values())) == len(PHASE_COLORS)


def test_report_and_metrics_database(run):
    _, run_dir, _ = run
    page = (run_dir / "index.html").read_text()
    # This run's own: timeline and time per package of each stage, installed size of stages 1-3,
    # stage 4's package sizes; and per stage the real builds behind the result, by run
    assert "All 4 stage(s) passed" in page and page.count("<figure>") == 12 + 4
    assert page.count("the real builds behind the result, by run") == 4
    for name in ("stage1-toolchain", "stage2-runtime", "stage3-chroot", "stage4-packages"):
        assert (run_dir / f"{name}.html").exists()
    from serpentlib.records.history import History
    with History(run_dir.parent / "metrics.sqlite") as h:
        assert list(h.runs()["run_id"]) == [json.loads((run_dir / "run.json").read_text())["run_id"]]
        assert len(h.trend("stage3", "tcc")) == 1
    # A cold run built everything itself: what its result cost is its own work, package by package.
    from serpentlib.records import cost
    spent = cost.load(run_dir)
    phases = table(run_dir, "phases")
    assert len(spent) == len(phases.groupby(["stage", "package"])) and spent["complete"].all()
    assert (spent["runs"] == 1).all()
    # stage 3's musl and linux-headers are stage 2's builds: counted once, in stage 2
    shared = spent[spent["origin"] == "shared"]
    assert set(zip(shared["stage"], shared["package"])) == {("stage3", "musl"), ("stage3", "linux-headers")}
    assert (spent.drop(shared.index)["origin"] == "built").all() and (shared["wall_s"] == 0).all()
    assert abs(spent["wall_s"].sum() - phases["wall_s"].sum()) < 1 and "What the result cost" in page


def test_stage4_repository_and_root(run):
    _, run_dir, work_dir = run
    repo = work_dir / "stage4" / "repo"
    index = json.loads((repo / "index.json").read_text())["packages"]
    assert set(index) == set(PROFILE.parameters(3)["packages"]) | {"filesystem"}
    assert "musl" in index["bash"]["depends"] and "libz.so.1" in index["zlib"]["provides"]
    root = work_dir / "stage4" / "root"
    assert not (root / "serpent").exists()
    listed = serpent("pkg", "list", "--root", str(root), db=run_dir.parent / "metrics.sqlite")
    assert listed.returncode == 0 and "tcc" in listed.stdout
    checks = table(run_dir, "checks", "stage4").set_index(["check", "subject"])
    assert checks.loc[("runs-in-root", "stands alone: sh, make and tcc build a zlib program"), "passed"]
    policies = checks[checks.index.get_level_values(0).str.startswith("policy:")]
    assert sorted(policies.index) == sorted((f"policy:{p}", name) for p in policy.POLICIES for name in index), \
        "one record per policy and package, no more, no less"


def test_stage4_sbom_validates_and_shows_patches_and_libwildebeest_users(run):
    """The real run's SPDX documents pass spdx-tools' full validation and the NTIA minimum
    elements; the report links them; the tables show every recipe patch and its provenance."""
    from ntia_conformance_checker.ntia_checker import NTIAChecker
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    from serpentlib.pkg import sbom
    _, run_dir, work_dir = run
    docs = sorted((run_dir / "sbom").glob("*.spdx.json"))
    index = json.loads((work_dir / "stage4" / "repo" / "index.json").read_text())["packages"]
    assert {p.name for p in docs} == {"root.spdx.json"} | {f"{n}.spdx.json" for n in index}
    for path in docs:
        problems = [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))]
        assert problems == [], (path.name, problems[:5])
        assert NTIAChecker(str(path)).compliant, path.name
    bill = sbom.summary(run_dir)
    assert bill.wildebeest_users == ["anacron"]
    # and what can be said of the parts anacron holds: tcc writes no symbol table to read them from
    root_doc = json.loads((run_dir / "sbom" / "root.spdx.json").read_text())
    uses = [r.get("comment") for r in root_doc["relationships"] if r["relationshipType"] == "BUILD_DEPENDENCY_OF"
            and r["spdxElementId"] == "SPDXRef-Package-libwildebeest"]
    assert uses == ["its files keep no symbol table: which parts of libwildebeest it uses cannot be read from them"]
    patched = {(r.package, r.patch) for r in bill.patches.itertuples()}
    assert patched == {(p.parent.parent.name, p.name) for p in (PROJECT / "recipes").glob("*/patches/*.patch")
                       if p.parent.parent.name in index}
    assert (bill.patches["upstream_status"] != "").all() and (bill.patches["origin"] != "").all()
    assert bill.licenses["packages"].sum() == len(index)
    assert 'href="sbom/root.spdx.json"' in (run_dir / "index.html").read_text()


def test_stage4_repository_is_signed_and_a_tampered_copy_is_refused(run, tmp_path):
    _, run_dir, work_dir = run
    repo = work_dir / "stage4" / "repo"
    kid = json.loads((repo / "index.json.sig").read_text())["key"]
    assert (work_dir / "stage4" / "root" / "etc" / "serpent" / "keys" / f"{kid}.pub").is_file()
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    index = copy / "index.json"
    data = json.loads(index.read_text())
    data["packages"]["bash"]["summary"] = "a shell, changed after signing"
    index.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    (tmp_path / "root").mkdir()
    done = serpent("pkg", "install", "bash", "--root", str(tmp_path / "root"), "--repo", str(copy),
                   db=run_dir.parent / "metrics.sqlite")
    assert done.returncode == 2 and "bad signature" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "root" / "usr").exists()


def test_verify_names_a_tampered_file_in_the_stage4_root(run):
    _, run_dir, work_dir = run
    root = work_dir / "stage4" / "root"
    db = run_dir.parent / "metrics.sqlite"
    assert serpent("pkg", "verify", "--root", str(root), db=db).returncode == 0
    target = root / "usr" / "bin" / "make"
    original = target.read_bytes()
    try:
        target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        bad = serpent("pkg", "verify", "--root", str(root), db=db)
        assert bad.returncode == 1 and "make: /usr/bin/make: modified" in bad.stdout
    finally:
        target.write_bytes(original)
    assert serpent("pkg", "verify", "--root", str(root), db=db).returncode == 0


def test_anacron_needs_libwildebeest_on_musl(run, tmp_path):
    """In a chroot of the stage4 root: anacron's readtab.c does not compile against musl alone
    (no <obstack.h>); with libwildebeest's flags it compiles, and anacron links."""
    from serpentlib.build.recipes import load_recipe
    from serpentlib.stages.common import make_store
    from serpentlib.build.sources import extract
    _, _, work_dir = run
    recipe = load_recipe(PROJECT / "recipes" / "anacron" / "recipe.yaml")
    extract(make_store().fetch(recipe.sources[0]).path, tmp_path / "anacron", strip=recipe.sources[0].strip)
    sandbox = Sandbox(root=work_dir / "stage4" / "root", binds=[Bind(tmp_path, "/work", readonly=False)],
                      shell="/usr/bin/bash")
    alone = sandbox.run("cd /work/anacron && tcc -c readtab.c", cwd="/", log=tmp_path / "alone.log")
    assert alone.exit_code != 0 and "'obstack.h' not found" in (tmp_path / "alone.log").read_text()
    build = recipe.build_for("stage3")  # the recipe's own build, as stage 3 ran it
    env = {"CC": "tcc", "CFLAGS": "-O2", "JOBS": "2", **build.env}
    wild = sandbox.run(f"set -e\n{build.build}\n./anacron -V", cwd="/work/anacron", log=tmp_path / "wild.log", env=env)
    assert wild.exit_code == 0, (tmp_path / "wild.log").read_text()
    assert "Anacron 2.3" in (tmp_path / "wild.log").read_text()


def test_one_package_installs_into_an_empty_root_and_runs(run, tmp_path):
    """`serpent pkg install bash` into an empty directory: its dependencies (musl, dash, the
    layout with its /bin and /lib links) come along, and bash runs in a chroot of just that."""
    _, run_dir, work_dir = run
    root = tmp_path / "root"
    root.mkdir()
    done = serpent("pkg", "install", "bash", "--root", str(root), "--repo", str(work_dir / "stage4" / "repo"),
                   db=run_dir.parent / "metrics.sqlite")
    assert done.returncode == 0 and "filesystem" in done.stdout and "musl" in done.stdout, done.stderr
    rec = Sandbox(root=root, shell="/bin/sh").run("bash -c 'echo $BASH_VERSION'", cwd="/", log=tmp_path / "log")
    assert rec.exit_code == 0 and "5.2.15" in (tmp_path / "log").read_text()


def _kill_after(root, repo, files):
    from serpentlib.pkg.installer import Root
    from serpentlib.pkg.repo import Repository
    done = []

    def die(path):
        done.append(path)
        if len(done) == files:
            os.kill(os.getpid(), 9)

    Root(root).install(Repository(repo), ["bash"], on_file=die)


def test_an_install_killed_midway_leaves_the_root_unchanged(run, tmp_path):
    """A real install from the stage4 repository, SIGKILLed after 20 files: the next command on
    the root rolls it back, and the root is exactly as before; then the install goes through."""
    import multiprocessing

    from serpentlib.pkg.installer import Root
    from serpentlib.pkg.repo import Repository
    _, _, work_dir = run
    repo, root = work_dir / "stage4" / "repo", tmp_path / "root"
    root.mkdir()
    Root(root).install(Repository(repo), ["filesystem"])
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    child = multiprocessing.get_context("fork").Process(target=_kill_after, args=(root, repo, 20))
    child.start()
    child.join()
    assert child.exitcode == -9
    assert (root / "var/lib/serpent/transaction.json").is_file()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) != before  # half-written until the next command
    listed = serpent("pkg", "list", "--root", str(root), db=tmp_path / "m.sqlite")
    assert listed.returncode == 0 and "bash" not in listed.stdout
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    done = Root(root).install(Repository(repo), ["bash"])
    assert "bash" in done and set(done) == set(Root(root).installed()) - {"filesystem"}
    assert Root(root).verify() == []


USER = "serpent-ci"


def readable_copy(base: Path) -> tuple[str, Path]:
    """What an ordinary user needs, copied where one can read it, wherever the clone is (under
    /root, say): the project without its venv, runs and git, and the venv it runs in, with the
    Jupyter kernel pointed at the copy. Returns (python, project)."""
    project = base / "project"
    shutil.copytree(PROJECT, project, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", ".pytest_cache", "*.egg-info"))
    if sys.prefix == sys.base_prefix:  # not a venv: the interpreter itself must be readable
        return sys.executable, project
    venv = base / "venv"
    subprocess.run(["cp", "-a", sys.prefix, str(venv)], check=True)
    for spec in venv.glob("share/jupyter/kernels/*/kernel.json"):
        data = json.loads(spec.read_text())
        data["argv"][0] = str(venv / "bin" / "python")
        spec.write_text(json.dumps(data))
    return str(venv / "bin" / "python"), project


def test_an_ordinary_users_bootstrap_from_its_own_stage_0_gives_roots_bytes(run):
    """Rootless from end to end: an unprivileged user, with nothing of root's but the project and
    the verified source files, makes its own stage 0 (mmdebstrap in a user namespace of its
    subordinate ids) and builds all four stages at another path through the same sandbox
    (`serpent reproduce --against` root's cold run). Its seed lists the same files as root's, every
    file of every stage and both repositories is identical to root's build, and every file the
    run wrote is the user's. Before the reruns below, which build stage 3 of other profiles there."""
    _, _, work_dir = run
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER], check=True)
    if USER not in Path("/etc/subuid").read_text():  # mmdebstrap maps the seed's users to these
        subprocess.run(["usermod", "--add-subuids", "300000-365535", "--add-subgids", "300000-365535", USER], check=True)
    base = Path(tempfile.mkdtemp(prefix="serpent-user-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        python, project = readable_copy(base)
        earlier = base / "earlier"  # root's build, where the user can read it
        earlier.mkdir()
        for stage in ("stage1", "stage2", "stage3", "stage4"):
            subprocess.run(["cp", "-a", str(work_dir / stage), str(earlier / stage)], check=True)
        store = base / "store"  # the user's own store, seeded with the verified files the stages need
        from serpentlib.build.recipes import load_recipes
        from serpentlib.build.sources import SourceStore
        root_store = SourceStore()
        wanted = {p for n in (1, 2, 3) for p in PROFILE.parameters(n)["packages"] + PROFILE.parameters(n).get("build_tools", [])}
        for recipe in load_recipes(PROJECT / "recipes", sorted(wanted)).values():
            for source in recipe.sources:
                target = store / source.sha256[:2] / source.sha256
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root_store.fetch(source).path, target)
        # The signer's key too: the repositories' signed indexes are among the files compared.
        from serpentlib.pkg.keys import default_store
        shutil.copytree(default_store(), base / "keys")
        profile = base / "user.yaml"
        profile.write_text((PROJECT / "params" / "mini.yaml").read_text() + f"store_dir: {store}\n")
        (base / "home").mkdir()
        subprocess.run(["chown", "-R", f"{USER}:", str(base)], check=True)
        as_user = ["runuser", "-u", USER, "--", "env", f"HOME={base / 'home'}", f"PYTHONPATH={project}",
                   f"SERPENT_SEEDS={base / 'seeds'}", f"SERPENT_KEYS={base / 'keys'}",
                   f"SERPENT_METRICS_DB={base / 'm.sqlite'}", python]
        usable = subprocess.run([*as_user, "-c", "import papermill, serpentlib; print(serpentlib.__file__)"],
                                capture_output=True, text=True, cwd=project)
        assert usable.returncode == 0 and usable.stdout.startswith(str(project)), usable.stderr[-2000:]
        repro = base / "repro"
        proc = subprocess.run([*as_user, "-m", "serpentlib.cli", "reproduce", "--profile", str(profile),
                               "--stage", "1,2,3,4", "--against", str(earlier), "--dir", str(repro), "-q",
                               "--fail-on-difference"], capture_output=True, text=True, cwd=project)
        assert "stage4:" in proc.stdout, proc.stderr[-3000:]
        from serpentlib.build.seed import seeds_dir
        seed = SeedSpec.from_params(PROFILE.common["seed"]).key
        theirs, ours = base / "seeds" / seed, seeds_dir() / seed
        assert json.loads((theirs / "manifest.json").read_text())["packages"] == \
            json.loads((ours / "manifest.json").read_text())["packages"], "Debian updated the suite in between"
        assert (theirs / "files.json").read_text() == (ours / "files.json").read_text(), "the same stage 0, file by file"
        built = table(repro / "b" / "run", "checks", "stage3")
        assert not built["outcome"].isin(FAILING).any() and (built["check"] == "fixed-point").any()
        uid = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True).stdout)
        made = repro / "b" / "second-build" / "work"
        assert {p.stat().st_uid for p in made.rglob("*") if not p.is_symlink()} == {uid}
        checks = pd.read_csv(repro / "checks.csv")
        assert list(checks["stage"]) == ["stage1", "stage2", "stage3", "stage4"]
        assert proc.returncode == 0, proc.stdout[-2000:]
        assert checks["subject"].str.startswith("100.0% of ").all()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def changed_profile(base: Path, package: str, old: str, new: str) -> Path:
    """The mini profile with one recipe changed, as a user's edit would: `old` becomes `new`."""
    recipes = base / "recipes"
    shutil.copytree(PROJECT / "recipes", recipes)
    recipe = recipes / package / "recipe.yaml"
    assert old in recipe.read_text()
    recipe.write_text(recipe.read_text().replace(old, new))
    profile = base / f"{package}-changed.yaml"
    profile.write_text((PROJECT / "params" / "mini.yaml").read_text() + f"recipes_dir: {recipes}\n")
    return profile


def slowed_profile(base: Path) -> Path:
    """zlib's build slowed by a sleep."""
    return changed_profile(base, "zlib", 'build: make -j"$JOBS"', 'build: sleep 20 && make -j"$JOBS"')


@pytest.fixture(scope="module")
def reruns(run, tmp_path_factory):
    """After the cold run, on the same work directory: the whole profile again (from the cache),
    then with every check run again; stage 3 with zlib's build slowed (cache on, so zlib and what
    follows it rebuild). Each run directory is called `run`, as the cold run's is: only their
    parents differ."""
    proc, run_dir, work_dir = run
    assert proc.returncode == 0
    base = tmp_path_factory.mktemp("reruns")
    db = run_dir.parent / "metrics.sqlite"
    runs = {}
    for name, args in (("noop", ["--profile", "mini"]),
                       ("recheck", ["--profile", "mini", "--recheck"]),
                       ("changed", ["--profile", str(slowed_profile(base)), "--stage", "3"])):
        t0 = time.monotonic()
        done = serpent("run", *args, "--run-dir", str(base / name / "run"), "--work-dir", str(work_dir), "-q", db=db)
        runs[name] = (done, base / name / "run", time.monotonic() - t0)
    return runs


def test_noop_rerun_does_no_build_work(run, reruns):
    done, run_dir, seconds = reruns["noop"]
    assert done.returncode == 0, done.stderr[-2000:]
    phases = table(run_dir, "phases")
    built = phases[phases["stage"] != "stage4"]
    assert set(built["phase"]) == {"cached"}, set(built["phase"])
    # Stage 4 packages afresh every time: seconds, and its checks are the proof of the root.
    assert set(phases[phases["stage"] == "stage4"]["phase"]) == {"manifest", "archive", "install", "boot", "sbom"}
    assert not table(run_dir, "checks")["outcome"].isin(FAILING).any()
    cold = table(run[1], "phases")["wall_s"].sum()
    assert seconds < cold / 4, f"no-op rerun {seconds:.0f} s against {cold:.0f} s of cold builds"


def test_noop_rerun_replays_the_checks_and_names_the_run_that_made_them(run, reruns):
    from serpentlib.records import metrics
    _, run_dir, _ = reruns["noop"]
    checks = metrics.load(run_dir, "checks")
    replayed, stage4 = checks[checks["stage"] != "stage4"], checks[checks["stage"] == "stage4"]
    assert set(replayed["stage"]) == {"stage1", "stage2", "stage3"}
    assert (replayed["cached_from"] == json.loads((run[1] / "run.json").read_text())["run_id"]).all(), set(replayed["cached_from"])
    assert len(stage4) and (stage4["cached_from"] == "").all(), "stage 4 always checks afresh"


def test_recheck_runs_every_check_again_on_the_cached_roots(run, reruns):
    from serpentlib.records import metrics
    done, run_dir, _ = reruns["recheck"]
    assert done.returncode == 0, done.stderr[-2000:]
    phases = table(run_dir, "phases")
    assert set(phases[phases["stage"] != "stage4"]["phase"]) == {"cached"}, "nothing was built again"
    checks, cold = metrics.load(run_dir, "checks"), metrics.load(run[1], "checks")
    assert (checks["cached_from"] == "").all(), set(checks["cached_from"])
    key = ["stage", "check", "subject", "outcome"]
    assert sorted(map(tuple, checks[key].values)) == sorted(map(tuple, cold[key].values))
    for log in ("stage1/checks/hello-c-static.run.log", "stage3/checks/fixed-point.log",
                "stage3/checks/tcc-test-test3.log"):
        assert (run_dir / "logs" / log).is_file(), f"{log}: the check did not run again"


def test_runs_in_folders_called_run_are_all_in_the_store_with_all_their_rows(run, reruns):
    from serpentlib.records import metrics
    from serpentlib.records.history import History

    dirs = [run[1]] + [d for _, d, _ in reruns.values()]
    ids = [json.loads((d / "run.json").read_text())["run_id"] for d in dirs]
    assert {d.name for d in dirs} == {"run"} and len(set(ids)) == len(dirs)
    with History(run[1].parent / "metrics.sqlite") as h:
        assert set(ids) <= set(h.runs()["run_id"])
        for d, run_id in zip(dirs, ids):
            for name in metrics.TABLES:
                assert len(h.table(name, [run_id])) == len(metrics.load(d, name)) > 0, (d, name)


def test_a_noop_rerun_is_no_speed_up_in_compare_or_the_trend(run, reruns, tmp_path):
    from serpentlib.records.history import History

    _, cold, _ = run
    _, noop, _ = reruns["noop"]
    db = cold.parent / "metrics.sqlite"
    done = serpent("compare", str(cold), str(noop), "--stage", "1,2,3", "--html", str(tmp_path / "c.html"), db=db)
    assert done.returncode == 0, done.stderr
    cached = sum(len(PROFILE.parameters(n)["packages"]) for n in (1, 2, 3))
    assert f"times compared for 0 packages built in both runs; {cached} taken from the build cache" in done.stdout
    assert "faster" not in done.stdout and "-100.0" not in done.stdout, done.stdout
    noop_id = json.loads((noop / "run.json").read_text())["run_id"]
    with History(db) as h:
        for stage, package in (("stage1", "musl"), ("stage3", "tcc")):
            assert noop_id not in set(h.trend(stage, package)["run_id"])
            both = h.trend(stage, package, origin=None).set_index("run_id")
            assert both.at[noop_id, "origin"] == "cached"
            assert both.at[noop_id, "from_run"] == json.loads((cold / "run.json").read_text())["run_id"]


def test_a_changed_recipe_rebuilds_it_and_the_same_bytes_leave_what_builds_on_it_cached(reruns):
    """zlib's build sleeps first: a new key, a rebuild, and the same bytes. What builds on zlib (in
    the chroot, everything after it) is keyed by zlib's output, not its key: all of it is cached."""
    done, run_dir, _ = reruns["changed"]
    assert done.returncode == 0, done.stderr[-2000:]
    phases = table(run_dir, "phases", "stage3")
    rebuilt = list(dict.fromkeys(phases[phases["phase"] == "build"]["package"]))
    cached = list(dict.fromkeys(phases[phases["phase"] == "cached"]["package"]))
    order = PROFILE.parameters(3)["packages"]
    assert rebuilt == ["zlib"] and cached == [p for p in order if p != "zlib"]


def test_a_rerun_flags_the_slowed_package_and_no_other(run, reruns):
    """The cold run against the rerun whose zlib build sleeps 20 s: zlib is flagged slower, and it
    is the one package built in both (the same bytes: what follows it came from the cache)."""
    _, run_dir, _ = run
    changed, changed_dir, _ = reruns["changed"]
    assert changed.returncode == 0, changed.stderr[-2000:]
    db = run_dir.parent / "metrics.sqlite"
    noise = ["--threshold", "0.5", "--min-seconds", "8"]
    out = serpent("compare", str(run_dir), str(changed_dir), *noise, "--html", str(changed_dir / "c.html"), db=db)
    assert out.returncode == 0, out.stderr
    flagged = [line for line in out.stdout.splitlines() if line.rstrip().endswith("slower")]
    assert len(flagged) == 1 and " zlib " in flagged[0], out.stdout
    order = PROFILE.parameters(3)["packages"]
    assert f"1 of {len(order)} packages flagged" in out.stdout
    assert "times compared for 1 packages built in both runs" in out.stdout, out.stdout


def test_a_killed_run_leaves_no_mount_and_the_next_resumes(run, reruns, tmp_path):
    """SIGKILL to `serpent run` mid-stage (as the OOM killer would): nothing mounted stays, the
    stage is not marked complete, and the next run takes the finished packages from the cache."""
    _, run_dir, work_dir = run
    # xz changed so that its bytes change (no lzmainfo; --disable-doc would not: its recipe removes
    # the docs anyway, and early cutoff then keeps all after it): new keys for it and what follows it.
    profile = changed_profile(tmp_path, "xz", "configure: [--disable-nls, --disable-shared]",
                              "configure: [--disable-nls, --disable-shared, --disable-lzmainfo]")
    killed_dir = tmp_path / "killed"
    env = {**os.environ, "SERPENT_METRICS_DB": str(tmp_path / "m.sqlite")}
    proc = subprocess.Popen([sys.executable, "-m", "serpentlib.cli", "run", "--profile", str(profile), "--stage", "3",
                             "--run-dir", str(killed_dir), "--work-dir", str(work_dir), "-q"],
                            cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while True:
        phases = (killed_dir / "phases.csv").read_text() if (killed_dir / "phases.csv").exists() else ""
        if ",xz,5.4.1,merge," in phases:
            break
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while processes_in(work_dir):
        assert time.monotonic() < deadline, f"processes of the killed run outlived it: {processes_in(work_dir)}"
        time.sleep(0.5)
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    assert str(work_dir) not in mounts
    assert not (work_dir / "stage3" / ".complete").exists(), "a killed stage is never taken as complete"
    resumed = serpent("run", "--profile", str(profile), "--stage", "3", "--run-dir", str(tmp_path / "resumed"),
                      "--work-dir", str(work_dir), "-q", db=tmp_path / "m.sqlite")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    phases = table(tmp_path / "resumed", "phases", "stage3")
    cached = list(dict.fromkeys(phases[phases["phase"] == "cached"]["package"]))
    # Built on the host, the kernel sees nothing of the chroot: xz's change leaves it cached.
    order = [p for p in PROFILE.parameters(3)["packages"] if p != "linux"]
    assert cached[-1] == "linux"
    cached = cached[:-1]
    # Everything finished before the kill (at least up to xz, which only the killed run built; the
    # dying kernel may have finished one more) comes from the cache; the rest is built.
    assert cached == order[:len(cached)] and order.index("xz") < len(cached) < len(order)
    assert (work_dir / "stage3" / ".complete").exists()


def test_no_mount_is_left(run):
    _, run_dir, work_dir = run
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    assert str(work_dir) not in mounts and str(run_dir) not in mounts



def test_two_schedules_of_a_stage_give_the_same_bytes(run, tmp_path):
    """Stage 2 built afresh twice on the cold run's stage 1: all its builds at once on the cores
    (they see stage 1 alone, and merge in the stage's order), then one core for all. The roots are
    byte-identical, and the first run did overlap its builds."""
    from serpentlib.records.reproduce import compare_work_dirs
    _, _, work_dir = run
    roots = []
    for jobs in (0, 1):
        work = tmp_path / f"jobs{jobs}"
        work.mkdir()
        shutil.copytree(work_dir / "stage1", work / "stage1", symlinks=True)
        profile = tmp_path / f"jobs{jobs}.yaml"
        profile.write_text((PROJECT / "params" / "mini.yaml").read_text() + f"jobs: {jobs}\n")
        done = serpent("run", "--profile", str(profile), "--stage", "2", "--rebuild", "--work-dir", str(work),
                       "--run-dir", str(tmp_path / f"run{jobs}"), "-q", db=tmp_path / "m.sqlite")
        assert done.returncode == 0, done.stderr[-2000:]
        roots.append(work)
    (diff,) = compare_work_dirs(roots[0], roots[1], ["stage2"])
    assert diff.files > 100 and diff.identical == diff.files, diff.differing.head(20).to_string()
    phases = table(tmp_path / "run0", "phases", "stage2")
    spans = phases.groupby("package").agg(start=("start", "min"), end=("end", "max"))
    overlapping = sum(((spans["start"] < row.end) & (spans["end"] > row.start)).sum() - 1 for row in spans.itertuples())
    assert overlapping > 0, "the builds ran one after another"
