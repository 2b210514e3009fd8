"""Builds on a Dask cluster: archives that travel between machines are checked, a worker whose
seed differs is refused, a LocalCluster's stage 2 is byte for byte the local one, and a worker
killed mid-build costs that build alone."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from serpentlib.build.remote import pack, unpack, unpack_verified
from serpentlib.errors import RemoteError
from serpentlib.hashes import tree_digest
from serpentlib.paths import PROJECT

from .conftest import serpent


def sample_tree(top: Path) -> Path:
    (top / "usr" / "bin").mkdir(parents=True)
    (top / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (top / "usr" / "bin" / "tool").chmod(0o4755)  # a setuid file keeps its mode through the cache, so here too
    (top / "usr" / "bin" / "sh").symlink_to("/usr/bin/tool")  # a root's absolute link: kept, never followed
    (top / "etc").mkdir()
    (top / "etc" / "conf").write_text("x = 1\n")
    (top / "etc" / "conf").chmod(0o640)
    (top / "empty").mkdir()
    return top


def test_an_output_arrives_as_it_left(tmp_path):
    tree = sample_tree(tmp_path / "dest")
    unpack_verified(pack(tree), tmp_path / "arrived", tree_digest(tree), "a test output")
    assert tree_digest(tmp_path / "arrived") == tree_digest(tree)
    assert os.readlink(tmp_path / "arrived" / "usr" / "bin" / "sh") == "/usr/bin/tool"
    assert (tmp_path / "arrived" / "usr" / "bin" / "tool").stat().st_mode & 0o7777 == 0o4755
    assert (tmp_path / "arrived" / "empty").is_dir()


def test_an_output_that_does_not_hash_as_sent_is_refused_and_leaves_nothing(tmp_path):
    tree = sample_tree(tmp_path / "dest")
    data = pack(tree)
    (tree / "etc" / "conf").write_text("x = 2\n")  # what the digest says is not what was packed
    with pytest.raises(RemoteError, match="hash to .* not the"):
        unpack_verified(data, tmp_path / "arrived", tree_digest(tree), "a test output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def hostile(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


@pytest.mark.parametrize("members, said", [
    ([(member("../outside"), b"x")], "outside its folder"),
    ([(member("/etc/passwd"), b"x")], "outside its folder"),
    ([(member("up", tarfile.SYMTYPE, ".."), b""), (member("up/planted"), b"x")], "written through"),
    ([(member("ln", tarfile.SYMTYPE, "/etc"), b""), (member("ln/passwd"), b"x")], "written through"),
    ([(member("dev", tarfile.CHRTYPE), b"")], "entry"),
    ([(member("hard", tarfile.LNKTYPE, "/etc/passwd"), b"")], "entry"),
])
def test_an_archive_from_a_worker_cannot_write_outside_its_folder(tmp_path, members, said):
    with pytest.raises(RemoteError, match=said):
        unpack(hostile(*members), tmp_path / "in", "a hostile output")
    assert not (tmp_path / "outside").exists() and not (tmp_path / "planted").exists()
    assert [p.name for p in tmp_path.iterdir()] in (["in"], [])


def test_the_timeline_puts_each_package_in_its_workers_lane():
    from serpentlib.records.plots import timeline
    rows = [("musl", "build", "0", 0), ("musl", "merge", "local", 9), ("dash", "build", "1", 1),
            ("dash", "merge", "local", 5), ("tcc", "build", "0", 10)]
    phases = pd.DataFrame([{"stage": "stage2", "package": p, "phase": ph, "worker": w, "wall_s": 3.0, "exit_code": 0,
                            "start": f"2026-12-05T08:00:{s:02d}+00:00"} for p, ph, w, s in rows])
    labels = [t.get_text() for t in timeline(phases).axes[0].get_yticklabels()]
    assert labels[::-1] == ["worker 0 · musl", "worker 0 · tcc", "worker 1 · dash"]
    local = timeline(phases.assign(worker="local"))
    assert [t.get_text() for t in local.axes[0].get_yticklabels()][::-1] == ["musl", "dash", "tcc"]


def test_a_cluster_that_does_not_answer_is_said_before_anything_runs(tmp_path):
    done = serpent("run", "--profile", "mini", "--cluster", "tcp://127.0.0.1:9", "--work-dir", str(tmp_path / "work"),
                   "--run-dir", str(tmp_path / "run"), db=tmp_path / "m.sqlite")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in done.stderr and "dask scheduler" in done.stderr
    assert not (tmp_path / "work").exists()
    bad = serpent("run", "--profile", "mini", "--workers", "0", db=tmp_path / "m.sqlite")
    assert bad.returncode == 2 and "needs at least one worker" in bad.stderr


# -- with the mini run's seed and stage 1 ----------------------------------------------------------
@pytest.fixture(scope="module")
def run(mini_run):
    proc, run_dir, work_dir = mini_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    return mini_run


def test_a_worker_whose_seed_differs_is_refused_with_the_difference_named(run):
    from distributed import LocalCluster

    from serpentlib.build.profile import load_profile
    from serpentlib.build.remote import Cluster
    from serpentlib.build.seed import ensure

    seed_params = load_profile("mini").common["seed"]
    seed = ensure(seed_params)
    packages = dict(seed.manifest["packages"])
    packages["make"] = "4.3-4.1-other"
    other = replace(seed, manifest={**seed.manifest, "packages": packages})  # another snapshot's seed
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as local:
        cluster = Cluster(local.scheduler_address, other, seed_params)
        try:
            with pytest.raises(RemoteError, match="no worker of the cluster can build") as err:
                cluster.workers()
            assert f"make {seed.manifest['packages']['make']} here, 4.3-4.1-other on the coordinator" in str(err.value)
            assert Cluster(local.scheduler_address, seed, seed_params).workers() == list(local.scheduler_info["workers"])
        finally:
            cluster.close()


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def building_worker(below: int) -> int | None:
    """A worker process of the run `below` (a spawned Python) with a sandbox running a build under it."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not cmdline(int(proc.name)).startswith(shutil.which("bwrap") or "bwrap"):
            continue
        worker, chain = parent(int(proc.name)), []
        step = worker
        while step > 1:
            chain.append(step)
            step = parent(step)
        if below in chain and "spawn_main" in cmdline(worker):
            return worker
    return None


def test_a_local_cluster_builds_stage_2_as_this_machine_does_and_survives_a_killed_worker(run, tmp_path):
    """Stage 2 on two worker processes, one of them killed while it builds: the stage still
    passes, every file is the one the local build made, each build names its worker, and the cache
    holds only whole, verified entries."""
    from serpentlib.build.cache import BuildCache
    from serpentlib.records.reproduce import compare_work_dirs

    _, _, work_dir = run
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(work_dir / "stage1", work / "stage1", symlinks=True)
    env = {**os.environ, "SERPENT_METRICS_DB": str(tmp_path / "m.sqlite"), "SERPENT_KEYS": str(tmp_path / "keys")}
    proc = subprocess.Popen([sys.executable, "-m", "serpentlib.cli", "run", "--profile", "mini", "--stage", "2",
                             "--rebuild", "--workers", "2", "--work-dir", str(work), "--run-dir", str(tmp_path / "run"),
                             "-q"], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, t0 = None, time.monotonic()
    while proc.poll() is None:
        if killed is None and time.monotonic() - t0 > 15:  # the cluster is up, builds are running
            killed = building_worker(proc.pid)
            if killed:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.5)
    out, err = proc.communicate()
    assert killed, "no worker was seen building"
    assert proc.returncode == 0, err[-3000:]
    (diff,) = compare_work_dirs(work_dir, work, ["stage2"])
    assert diff.files > 100 and diff.identical == diff.files, diff.differing.head(20).to_string()
    phases = pd.read_csv(tmp_path / "run" / "phases.csv", dtype={"worker": str})
    built = phases[phases["phase"] == "build"]
    assert set(built["worker"]) == {"0", "1"}, built[["package", "worker"]].to_string()
    assert set(phases[phases["phase"] == "merge"]["worker"]) == {"local"}
    sizes = pd.read_csv(tmp_path / "run" / "sizes.csv")  # each compiler as the worker that built with it saw it
    assert sizes["compiler"].str.contains("stage 1's wrapper of stage 0's clang").all(), sizes["compiler"].to_list()
    cache = BuildCache(work / "cache" / "builds")
    entries = [p for p in cache.root.iterdir() if not p.name.startswith("checks-")]
    assert len(entries) == len(set(phases["package"])), sorted(p.name for p in entries)
    assert all(cache.get(p.name) is not None for p in entries)  # each whole, and its files hash as recorded
