import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serpentlib.cli import main
from serpentlib.errors import ProfileError
from serpentlib.build.recipes import load_recipes
from serpentlib.build.profile import STAGE_NOTEBOOKS, check_parameters, load_profile
from serpentlib.paths import PROJECT

from .conftest import FIXTURES

STAGE1 = PROJECT / "notebooks" / "stage1-toolchain.ipynb"


def write_profile(tmp_path: Path, text: str) -> Path:
    """A profile of `text`, seeded like mini (every run needs stage 0)."""
    path = tmp_path / "custom.yaml"
    path.write_text(text + "\n" + yaml.safe_dump({"seed": load_profile("mini").common["seed"]}))
    return path


def test_unknown_notebook_parameter_fails_before_anything_runs(tmp_path, capsys):
    profile = write_profile(tmp_path, "target: x86_64-serpent-linux-musl\nstages:\n  1:\n    packagez: [musl]\n")
    code = main(["run", "--profile", str(profile), "--stage", "1", "--run-dir", str(tmp_path / "run"),
                 "--work-dir", str(tmp_path / "work")])
    err = capsys.readouterr().err
    assert code == 2
    assert "'packagez' is not a parameter of stage1-toolchain.ipynb" in err and "did you mean 'packages'" in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "work").exists()


def test_parameter_of_the_wrong_type_is_refused():
    with pytest.raises(ProfileError, match="'jobs' should be int"):
        check_parameters(STAGE1, {"jobs": "two"}, "test")


def test_unknown_profile_suggests_a_known_one(capsys):
    assert main(["run", "--profile", "minii"]) == 2
    assert "did you mean 'mini'" in capsys.readouterr().err


def test_unknown_stage_is_refused(capsys):
    assert main(["run", "--profile", "mini", "--stage", "7"]) == 2
    assert "no stage [7]" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mini", "full"])
def test_profiles_match_their_notebooks_and_their_recipes_load(name):
    profile = load_profile(name)
    assert profile.stage_numbers == [1, 2, 3, 4]
    for n in profile.stage_numbers:
        params = {**profile.parameters(n), "work_dir": "w", "run_dir": "r", "run_id": "i", "use_cache": True,
                  "recheck": True}  # what `serpent run --recheck` passes
        check_parameters(PROJECT / "notebooks" / STAGE_NOTEBOOKS[n], params, name)
        wanted = params.get("packages", []) + params.get("build_tools", [])
        assert set(load_recipes(PROJECT / "recipes", wanted)) == set(wanted)


@pytest.mark.build
def test_fetch_full_verifies_every_source_it_pins(capsys, root_required):
    """The full profile's sources (LLVM, Python, cmake, ninja besides mini's) are all to be had
    and match their sha256s; `fetch --check` says where each can be had now."""
    assert main(["fetch", "--profile", "full"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for name in ("python3.11_3.11.2.orig.tar.gz", "cmake_3.25.1.orig.tar.gz", "ninja-build_1.11.1.orig.tar.gz",
                 "llvm-toolchain-14_14.0.6.orig.tar.xz"):
        assert name in out, out
    assert main(["fetch", "--check", "--profile", "full"]) == 0, capsys.readouterr().err


@pytest.mark.build
def test_failing_build_names_package_phase_and_log(tmp_path, root_required):
    profile = write_profile(tmp_path, f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\n"
                                      "stages:\n  1:\n    packages: [broken-build]\n")
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "serpentlib.cli", "run", "--profile", str(profile), "--stage", "1",
                           "--run-dir", str(run_dir), "--work-dir", str(tmp_path / "work"), "-q"],
                          capture_output=True, text=True, cwd=PROJECT)
    assert proc.returncode == 1, proc.stderr
    log = run_dir / "logs" / "stage1" / "broken-build" / "build.log"
    assert "stage 1 failed: broken-build in build (exit 3)" in proc.stderr
    assert str(log) in proc.stderr and "about to fail on purpose" in proc.stderr
    assert json.loads((run_dir / "run.json").read_text())["stages"] == {"1": "failed"}
    phases = (run_dir / "phases.csv").read_text()
    assert "broken-build" in phases and "fetch" in phases  # what finished before the failure is kept
    assert (run_dir / "stage1-toolchain.ipynb").exists()


@pytest.mark.build
def test_fetch_profile_fetches_and_verifies_every_source(tmp_path, capsys, root_required):
    """Debian-only sources come through stage 0's apt (the host's has no deb-src)."""
    profile = write_profile(tmp_path, f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\n"
                                      "stages:\n  1:\n    packages: [broken-build]\n")
    store = tmp_path / "store"
    assert main(["fetch", "--profile", str(profile), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "musl-1.2.3.tar.gz" in out and "debian" in out
    assert (store / "7d" / "7d5b0b6062521e4627e099e4c9dc8248d32a30285e959b7eecaa780cf8cfd4a4").is_file()


@pytest.mark.build
@pytest.mark.parametrize("size_mb, where", [
    (2, "no space left on the device while writing"),  # full before any package: stage1 copies clang's headers (21 MB)
    (40, "No space left on device"),         # full in fills-disk's build: dd says so in the log's tail
])
def test_a_full_disk_is_a_clear_error(tmp_path, root_required, size_mb, where):
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(work)], check=True)
    try:
        profile = write_profile(tmp_path, f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\n"
                                          "stages:\n  1:\n    packages: [fills-disk]\n")
        run_dir = tmp_path / "run"
        proc = subprocess.run([sys.executable, "-m", "serpentlib.cli", "run", "--profile", str(profile), "--stage", "1",
                               "--run-dir", str(run_dir), "--work-dir", str(work), "-q"],
                              capture_output=True, text=True, cwd=PROJECT)
    finally:
        subprocess.run(["umount", "-l", str(work)], check=True)
    assert proc.returncode == 1, proc.stderr
    assert "stage 1 failed" in proc.stderr and where in proc.stderr, proc.stderr[-1500:]
    assert size_mb < 40 or "fills-disk in build" in proc.stderr
    assert (run_dir / "index.html").exists() and (run_dir / "run.json").exists(), "the failed run has its report"
    assert size_mb < 40 or "fills-disk,1.2.3,extract" in (run_dir / "phases.csv").read_text(), "what finished is kept"


def run_fixture(tmp_path, package):
    profile = write_profile(tmp_path, f"recipes_dir: {FIXTURES / 'recipes' / 'good'}\n"
                                      f"stages:\n  1:\n    packages: [{package}]\n")
    return subprocess.run([sys.executable, "-m", "serpentlib.cli", "run", "--profile", str(profile), "--stage", "1",
                           "--run-dir", str(tmp_path / "run"), "--work-dir", str(tmp_path / "work"), "-q"],
                          capture_output=True, text=True, cwd=PROJECT)


@pytest.mark.build
def test_a_build_has_no_network_though_the_host_has(tmp_path, root_required):
    import socket
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 47611))
    server.listen(4)
    try:
        recipe = (FIXTURES / "recipes" / "good" / "net-probe" / "recipe.yaml").read_text()
        command = recipe.split("build: ", 1)[1].strip()
        host = subprocess.run(command, shell=True, capture_output=True, text=True)
        assert host.stdout.strip() == "connected", host.stderr
        proc = run_fixture(tmp_path, "net-probe")
    finally:
        server.close()
    assert proc.returncode == 1 and "net-probe in build" in proc.stderr
    # Its own loopback only: the host's 127.0.0.1 is another address space.
    assert "Connection refused" in proc.stderr or "Network is unreachable" in proc.stderr


@pytest.mark.build
def test_a_host_build_cannot_write_outside_its_tree(tmp_path, root_required):
    proc = run_fixture(tmp_path, "writes-outside")
    assert proc.returncode == 1 and "writes-outside in build" in proc.stderr
    assert "Read-only file system" in proc.stderr
    assert not (tmp_path / "work" / "stage1" / "escaped").exists() and not Path("/var/tmp/serpent-escaped").exists()


@pytest.mark.build
def test_fetch_check_names_a_pinned_file_no_place_has(tmp_path, capsys, root_required):
    """Upstream gone, Debian's index without it, no mirror: exit 1, the file named with its fix;
    a store copy does not count."""
    store = tmp_path / "store"
    sha = "9b969322012d796dc23dda27a35866034fa67d8fb67e0e2c45c913c3d43219dd"
    (store / sha[:2]).mkdir(parents=True)
    (store / sha[:2] / sha).write_bytes(b"only the store still has this")
    profile = write_profile(tmp_path, f"recipes_dir: {FIXTURES / 'recipes' / 'gone'}\n"
                                      "stages:\n  1:\n    packages: [gone-source]\n")
    assert main(["fetch", "--check", "--profile", str(profile), "--store", str(store)]) == 1
    out, err = capsys.readouterr()
    assert "musl-1.2.2.tar.gz (gone-source) can be had from no mirror, upstream or Debian's index" in err
    assert "only this store still holds it" in err and "bump the recipe" in err and "serpent mirror export" in err
    assert "not in the index" in out and "0 of 1 files can be had now" in out


@pytest.mark.build
def test_fetch_check_passes_for_mini_and_an_exported_mirror_serves_it(tmp_path, capsys, root_required):
    """Every file mini pins can be had now; `mirror export` writes them all, verified, and a
    profile that lists that directory (upstream and Debian off) fetches everything from it."""
    assert main(["fetch", "--check", "--profile", "mini"]) == 0, capsys.readouterr().err
    mirror = tmp_path / "mirror"
    assert main(["mirror", "export", str(mirror), "--profile", "mini"]) == 0
    sums = dict(reversed(line.split("  ")) for line in (mirror / "SHA256SUMS").read_text().splitlines())
    assert len(sums) >= 10 and all((mirror / f).is_file() for f in sums)
    mini = (PROJECT / "params" / "mini.yaml").read_text()
    profile = tmp_path / "own.yaml"
    profile.write_text(mini.replace("mirrors: []", f"mirrors: [{mirror}]").replace("fetch_upstream: true",
                                                                                   "fetch_upstream: false"))
    capsys.readouterr()
    assert main(["fetch", "--profile", str(profile), "--store", str(tmp_path / "store")]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines()[1:] if ln.strip()]
    # Each file from the mirror; a file two packages share comes from the new store the second time.
    assert all(ln.endswith(f"mirror {mirror}") or ln.endswith(" store") for ln in rows), rows
    assert sum(ln.endswith(f"mirror {mirror}") for ln in rows) == len(sums)


def test_run_gives_back_the_callers_sigterm_handler(tmp_path, capsys):
    """`serpent run` turns SIGTERM into ^C while it runs only: called in-process (as here), it
    must not leave that handler behind, or forked workers later ignore pool.terminate(). The
    profile fails in run_stages, after the handler was set."""
    import signal
    before = signal.getsignal(signal.SIGTERM)
    profile = write_profile(tmp_path, "stages:\n  1:\n    packagez: [musl]\n")
    assert main(["run", "--profile", str(profile), "--stage", "1", "--run-dir", str(tmp_path / "run"),
                 "--work-dir", str(tmp_path / "work")]) == 2
    assert "packagez" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


def test_reproduce_against_a_work_dir_without_the_stage_refuses_before_building(tmp_path, capsys):
    (tmp_path / "earlier" / "stage3").mkdir(parents=True)  # begun, never completed
    code = main(["reproduce", "--profile", "mini", "--stage", "3,4", "--against", str(tmp_path / "earlier"),
                 "--dir", str(tmp_path / "repro")])
    err = capsys.readouterr().err
    assert code == 2 and f"stage3 has not completed in {tmp_path / 'earlier'}" in err, err
    assert not (tmp_path / "repro").exists(), "nothing was built"


def test_two_builds_of_a_stage_from_other_inputs_are_not_compared(tmp_path):
    from serpentlib.errors import SerpentError
    from serpentlib.records.reproduce import same_inputs
    from serpentlib.build.cache import COMPLETE

    # The cache keys differ with the work directory's path; the inputs do not.
    for name, key, inputs in (("a", "0" * 64, "1" * 64), ("b", "9" * 64, "1" * 64), ("c", "0" * 64, "2" * 64)):
        (tmp_path / name / "stage3").mkdir(parents=True)
        (tmp_path / name / "stage3" / COMPLETE).write_text(json.dumps({"key": key, "inputs": inputs}))
    same_inputs(tmp_path / "a", tmp_path / "b", ["stage3"])
    with pytest.raises(SerpentError, match=r"stage3 of .*/a was built from other inputs \(111111111111\) than "
                                           r"stage3 of .*/c \(222222222222\)"):
        same_inputs(tmp_path / "a", tmp_path / "c", ["stage3"])
