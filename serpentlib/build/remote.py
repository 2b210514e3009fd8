"""Builds on other machines: Dask workers build a stage's packages that see stage 0 and stage 1
alone (all of stage 2, stage 3's builds on the host); the coordinator keeps the roots, merges and
checks.

A task (`RemoteBuild`) carries all a build needs but its sources, which each worker fetches
and verifies into its own store: the recipe's folder, the environment, the cache key, and the
digest of each stage tree it sees. A worker has its own work directory (`SERPENT_WORKER_DIR`,
one folder per worker) and a stage 0 seed whose packages must be the coordinator's: a worker
whose seed differs is refused, the difference named. Stage trees travel to a worker once, as
archives, and build outputs come back as archives; each is checked against its digest when it
arrives, before anything uses it. A worker that dies mid-build loses that build alone: Dask runs
the task again on another worker, and the coordinator caches only a whole, verified output.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..errors import BuildError, RemoteError, SerpentError
from ..files import walk
from ..hashes import digest, tree_digest
from ..rows import PhaseRecord, SizeRecord
from .cache import NOT_MADE
from .sandbox import stopping
from .seed import changed_packages

log = logging.getLogger(__name__)

WORKER_DIR = "SERPENT_WORKER_DIR"  # where a worker keeps its work directory
WORKER_JOBS = "SERPENT_JOBS"       # compile jobs a worker's build runs (default: its cores)


# -- archives ---------------------------------------------------------------------------------
def pack(tree: Path, skip: tuple[str, ...] = ()) -> bytes:
    """A tree as a gzip'd tar: directories, regular files (hard links as files) and symbolic
    links, modes kept, in the order of their paths, owners and times left out."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        for entry in walk(tree, prune=(lambda e: e.rel in skip) if skip else None):
            info = tarfile.TarInfo(entry.rel)
            info.mode = entry.mode
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.is_link:
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(entry.path)
                tar.addfile(info)
            elif entry.is_file:
                info.size = entry.st.st_size
                with open(entry.path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                raise RemoteError(f"{entry.path} is neither a file, a link nor a folder",
                                  "a build's output may hold only those")
    return out.getvalue()


def unpack(data: bytes, dest: Path, what: str) -> None:
    """Extract an archive `pack` made into the new folder `dest`. It comes from elsewhere: only
    folders, files and links; no absolute path, no `..`, nothing written below a link; a link's
    target is kept as it is and never followed. `what` names the archive in an error."""
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not name.parts:
                raise RemoteError(f"{what}: the member '{member.name}' would land outside its folder",
                                  "the worker that sent it is not to be trusted: check it")
            path = dest.joinpath(*name.parts)
            parent = path.parent
            while parent != dest:
                if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                    raise RemoteError(f"{what}: '{member.name}' would be written through {parent}, not a folder",
                                      "the worker that sent it is not to be trusted: check it")
                parent = parent.parent
            if path.exists() or path.is_symlink():
                raise RemoteError(f"{what}: '{member.name}' comes twice", "the archive is damaged")
            path.parent.mkdir(parents=True, exist_ok=True)
            if member.isdir():
                path.mkdir()
            elif member.issym():
                os.symlink(member.linkname, path)
                continue
            elif member.isfile():
                with tar.extractfile(member) as src, open(path, "xb") as out:
                    shutil.copyfileobj(src, out)
            else:
                raise RemoteError(f"{what}: '{member.name}' is a {member.type!r} entry",
                                  "only folders, files and links travel between workers")
            os.chmod(path, stat.S_IMODE(member.mode))


def unpack_verified(data: bytes, dest: Path, want: str, what: str, skip: tuple[str, ...] = ()) -> None:
    """`unpack` into `dest`, then its tree digest must be `want`; otherwise nothing is left."""
    partial = Path(tempfile.mkdtemp(prefix=f".{dest.name}.arriving-", dir=dest.parent))
    try:
        unpack(data, partial / "tree", what)
        got = tree_digest(partial / "tree", skip=skip)
        if got != want:
            raise RemoteError(f"{what}: its files hash to {got[:16]}, not the {want[:16]} it was sent as",
                              "it was damaged or changed on the way; nothing of it was used")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(partial / "tree", dest)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


# -- the task ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteBuild:
    """One package's build in one stage, as the coordinator hands it to a worker."""

    stage: str
    package: str
    key: str                  # the coordinator's cache key: the output is kept under it
    recipe: bytes             # the recipe's folder, packed
    recipe_digest: str        # of recipe_inputs(): the worker's reading of the folder must agree
    env: dict[str, str]       # the build's environment, naming the coordinator's work directory
    base: str                 # that work directory: the worker puts its own in its place
    path: str                 # PATH in the sandbox (the same replacement)
    compiler: str             # the profile's final compiler (where `on_host: [tcc]` applies)
    trees: dict[str, str]     # stage -> tree digest, of each stage the build sees
    seed: dict                # the profile's seed block
    seed_key: str             # the coordinator's Seed.build_key
    seed_packages: dict[str, str]  # and its packages, to name a difference
    mirrors: list[str] = field(default_factory=list)
    fetch_upstream: bool = True


@dataclass(frozen=True)
class RemoteResult:
    worker: str
    records: list[PhaseRecord]
    logs: bytes                # the package's log folder, packed
    size: SizeRecord | None = None
    compiler: str = ""
    output: bytes = b""        # the package's installed tree, packed
    digest: str = ""           # its tree digest
    error: tuple[str, str, str] = ("", "", "")  # kind, message, hint; a BuildError's kind is "build:<phase>:<exit>"


def seed_difference(ours: dict[str, str], theirs: dict[str, str]) -> str:
    changed = changed_packages(ours, theirs)
    return ", ".join(f"{p} {theirs.get(p, '-')} here, {ours.get(p, '-')} on the coordinator" for p in changed[:8]) + \
        (f" and {len(changed) - 8} more" if len(changed) > 8 else "")


def worker_name() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"pid{os.getpid()}"


def worker_base(name: str) -> Path:
    top = Path(os.environ.get(WORKER_DIR) or Path.home() / ".cache" / "serpentlib" / "workers")
    return top / re.sub(r"[^\w.-]+", "_", name)


_seed_lock = threading.Lock()
_seeds: dict[str, object] = {}


def worker_seed(seed_params: dict):
    """This machine's seed of the profile, made before (`serpent stage0`), checked once per process."""
    from .seed import FILES, Seed, SeedSpec, seeds_dir, verify
    spec = SeedSpec.from_params(seed_params)
    with _seed_lock:
        if spec.key not in _seeds:
            where = seeds_dir() / spec.key
            if not (where / "manifest.json").is_file() or not (where / FILES).is_file():
                raise RemoteError(f"no stage 0 seed {spec.key} in {seeds_dir()}",
                                  "make it on this machine first, with the coordinator's profile: "
                                  "serpent stage0 --profile PROFILE")
            seed = Seed(spec, where, json.loads((where / "manifest.json").read_text()))
            verify(seed)
            _seeds[spec.key] = seed
        return _seeds[spec.key]


def seed_facts(seed_params: dict) -> dict:
    """What the coordinator asks each worker before sending it work: its seed's key and packages."""
    try:
        seed = worker_seed(seed_params)
    except SerpentError as exc:
        return {"error": str(exc)}
    return {"key": seed.build_key, "packages": seed.manifest.get("packages", {})}


_trees_lock = threading.Lock()


def _trees_in(base: Path, task: RemoteBuild, archives: dict[str, bytes]) -> None:
    """Each stage tree the build sees, in the worker's work directory, as the coordinator's: one
    kept from an earlier build is hashed again before it is used."""
    with _trees_lock:
        for stage, want in task.trees.items():
            if (base / stage).is_dir() and tree_digest(base / stage, skip=NOT_MADE) == want:
                continue
            unpack_verified(archives[stage], base / stage, want, f"{stage}'s tree from the coordinator", NOT_MADE)


def run_remote(task: RemoteBuild, archives: dict[str, bytes]) -> RemoteResult:
    """On a worker: build `task` afresh in this worker's work directory and send back its
    records, logs and output. A failing build comes back as an error with its logs."""
    from .cache import recipe_inputs
    from .phases import PackageBuild, StageContext
    from .recipes import load_recipe
    from .sources import SourceStore

    name = worker_name()
    base = worker_base(name)
    base.mkdir(parents=True, exist_ok=True)
    records: list[PhaseRecord] = []
    logs = base / "logs" / task.stage
    shutil.rmtree(logs / task.package, ignore_errors=True)
    (logs / task.package).mkdir(parents=True)

    def result(**kw) -> RemoteResult:
        return RemoteResult(worker=name, records=records, logs=pack(logs / task.package), **kw)

    try:
        seed = worker_seed(task.seed)
        if seed.build_key != task.seed_key:
            raise RemoteError(f"worker {name}: its stage 0 seed differs from the coordinator's: "
                              + seed_difference(task.seed_packages, seed.manifest.get("packages", {})),
                              "make this machine's seed from the same Debian snapshot (serpent stage0 --recreate), "
                              "or leave this worker out")
        _trees_in(base, task, archives)
        recipe_dir = base / "recipes" / task.recipe_digest[:16] / task.package
        if not (recipe_dir / "recipe.yaml").is_file():
            shutil.rmtree(recipe_dir, ignore_errors=True)
            recipe_dir.parent.mkdir(parents=True, exist_ok=True)
            unpack(task.recipe, recipe_dir, f"the recipe of {task.package}")
        recipe = load_recipe(recipe_dir / "recipe.yaml")
        if digest(recipe_inputs(recipe, task.stage)) != task.recipe_digest:
            raise RemoteError(f"worker {name}: {task.package}'s recipe reads differently here than on the coordinator",
                              "run the same serpentlib on the coordinator and every worker")
        env = {k: v.replace(task.base, str(base)) for k, v in task.env.items()}
        sandbox = seed.sandbox(path=task.path.replace(task.base, str(base)))
        out: dict[str, object] = {}

        def keep(destdir: Path, size: SizeRecord) -> None:
            out["digest"] = tree_digest(destdir)
            out["output"] = pack(destdir)

        cores = max(1, int(os.environ.get(WORKER_JOBS) or os.cpu_count() or 1))
        ctx = StageContext(stage=task.stage, work=base / task.stage, install_root=base / task.stage / "root",
                           store=SourceStore(None, mirrors=task.mirrors, upstream=task.fetch_upstream, seed=seed),
                           sandbox=sandbox, host_sandbox=sandbox, env=env, host_env=env, logs=logs, jobs=cores,
                           compiler=task.compiler, sees=[base / s for s in task.trees],
                           on_record=lambda r: records.append(replace(r, worker=name)), on_installed=keep,
                           merges=False)
        build = PackageBuild(recipe, ctx, task.key)
        shutil.rmtree(build.root, ignore_errors=True)  # never resumed: a killed attempt may have left anything
        compiler = build.compiler()
        _, size = build.run()
        return result(size=size, compiler=compiler, output=out["output"], digest=out["digest"])
    except BuildError as exc:
        return result(error=(f"build:{exc.phase}:{exc.exit_code}", exc.message, exc.hint or ""))
    except SerpentError as exc:
        return result(error=(type(exc).__name__, exc.message, exc.hint or ""))


# -- the coordinator's side -------------------------------------------------------------------
def connect(address: str, timeout: str = "30s"):
    """A Dask client of the scheduler at `address`, or an error that says none answers there."""
    from distributed import Client
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except OSError as exc:
        raise RemoteError(f"no Dask scheduler answers at {address}: {exc}",
                          "start one (dask scheduler) and its workers (dask worker ADDRESS), or leave out --cluster")


class Cluster:
    """A Dask scheduler this stage's remote builds go to, and what it was told: which workers
    are accepted (their seeds agree), and each stage tree sent once."""

    def __init__(self, address: str, seed, seed_params: dict, only: list[str] | None = None) -> None:
        self.client = connect(address)
        self.seed, self.seed_params, self.only = seed, seed_params, list(only or [])
        self.accepted: dict[str, str] = {}  # address -> worker name
        self.refused: dict[str, str] = {}   # address -> why
        self._archives: dict[str, object] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def workers(self) -> list[str]:
        """The addresses of the workers builds may go to: each new one is asked for its seed first."""
        with self._lock:
            info = self.client.scheduler_info(n_workers=-1)["workers"]
            new = [a for a, w in info.items() if a not in self.accepted and a not in self.refused
                   and (not self.only or str(w.get("name")) in self.only)]
            if new:
                facts = self.client.run(seed_facts, self.seed_params, workers=new, on_error="return")
                for address, said in facts.items():
                    name = str(info[address].get("name", address))
                    if isinstance(said, BaseException) or "error" in said:
                        self.refused[address] = f"worker {name}: {said if isinstance(said, BaseException) else said['error']}"
                    elif said["key"] != self.seed.build_key:
                        self.refused[address] = (f"worker {name}: its stage 0 seed differs from the coordinator's: "
                                                 + seed_difference(self.seed.manifest.get("packages", {}), said["packages"]))
                    else:
                        self.accepted[address] = name
                        continue
                    log.warning("cluster: %s; it gets no builds", self.refused[address])
            alive = [a for a in self.accepted if a in info]
        if not alive:
            why = "; ".join(self.refused.values()) or "the scheduler has no workers"
            raise RemoteError(f"no worker of the cluster can build: {why}",
                              "start workers whose stage 0 seed is the coordinator's (serpent stage0 --profile PROFILE "
                              "on each machine), or leave out --cluster")
        return alive

    def archive(self, stage: str, tree: Path, want: str):
        """The stage's tree as a Dask future, packed and sent once; its digest must be `want` (the
        one its completion recorded): a tree changed since is refused."""
        with self._lock:
            if want not in self._archives:
                got = tree_digest(tree, skip=NOT_MADE)
                if got != want:
                    raise RemoteError(f"{tree} has changed since {stage} completed ({got[:16]}, not {want[:16]})",
                                      f"run {stage} again: serpent run --stage {stage[-1]}")
                self._archives[want] = self.client.scatter(pack(tree, NOT_MADE), hash=False)
            return self._archives[want]

    def build(self, task: RemoteBuild, trees: dict[str, Path]) -> RemoteResult:
        """Run `task` on an accepted worker and wait for it (a worker that dies: Dask runs it again)."""
        archives = {s: self.archive(s, trees[s], task.trees[s]) for s in task.trees}
        # Restricted to the accepted workers only when one was refused (or only some are wanted): else
        # a worker restarted after dying takes builds again; each task checks its worker's seed too.
        accepted = self.workers()
        future = self.client.submit(run_remote, task, archives, workers=accepted if self.refused or self.only else None,
                                    pure=False, key=f"build-{task.stage}-{task.package}-{os.urandom(4).hex()}")
        try:
            while True:  # ^C on the run (stop_all) cancels the build on its worker too
                try:
                    return future.result(timeout=1)
                except TimeoutError:
                    if stopping():
                        future.cancel()
                        raise KeyboardInterrupt from None
        except Exception as exc:  # noqa: BLE001 - Dask's own (KilledWorker, a lost scheduler)
            raise RemoteError(f"{task.stage}: {task.package}: the cluster could not run its build: "
                              f"{type(exc).__name__}: {exc}",
                              "see the workers' logs; a build lost with its worker is run again up to "
                              "Dask's distributed.scheduler.allowed-failures times") from None


def local_cluster(workers: int, work_dir: Path):
    """`serpent run --workers N`: a Dask LocalCluster of N worker processes on this machine, each
    with its own work directory under `<work_dir>/workers` and its share of the cores; they share
    this machine's seed and source store. Close it when the run ends."""
    from distributed import LocalCluster
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cores = max(1, (os.cpu_count() or 1) // workers)
    env = {WORKER_DIR: str(Path(work_dir).resolve() / "workers"), WORKER_JOBS: str(cores)}
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        env=env, silence_logs=logging.WARNING)
