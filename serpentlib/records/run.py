"""Runs: execute stage notebooks headless with papermill into a run directory."""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path


from . import metrics
from ..errors import SerpentError, StageFailed
from ..build.lock import hand_down, lock_work_dir
from ..build.profile import STAGE_NOTEBOOKS, Profile, check_parameters
from ..paths import NOTEBOOKS, PROJECT
from ..build.sandbox import preflight
from ..build.seed import ensure as ensure_seed

log = logging.getLogger(__name__)
KERNEL = "serpentlib"


@dataclass
class RunInfo:
    run_id: str
    profile: str
    run_dir: str
    work_dir: str
    host: dict
    started: str
    stages: dict[str, str] = field(default_factory=dict)  # "1" -> passed | failed | skipped
    seed: dict = field(default_factory=dict)  # stage 0: suite, key, clang, notable package versions
    finished: str = ""
    duration_s: float = 0.0
    failure: str = ""

    def save(self) -> None:
        Path(self.run_dir, "run.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def host_facts() -> dict:
    return {"hostname": socket.gethostname(), "kernel": platform.release(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version()}


def new_run_id(profile: str) -> str:
    """UTC time, profile and a random part: unique whatever the run directory is called."""
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{profile}-{secrets.token_hex(4)}"


def require_kernel(name: str = KERNEL) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if name not in KernelSpecManager().find_kernel_specs():
        raise SerpentError(f"the Jupyter kernel '{name}' is not registered",
                           "run `make setup`, which registers the project's own environment as that kernel")


def failed_phase(run_dir: Path, stage: int) -> dict | None:
    phases = metrics.load(run_dir, "phases", f"stage{stage}")
    bad = phases[phases["exit_code"] != 0] if not phases.empty else phases
    if bad.empty or not isinstance(bad.iloc[-1]["log"], str) or not bad.iloc[-1]["log"]:
        return None  # no failing command with a log: the notebook's error says what failed
    return bad.iloc[-1].to_dict()


def logged_kernel(stderr_log: Path) -> type:
    """A kernel manager whose kernel's own stderr (its start-up warnings; the traceback it prints
    when it is interrupted after the run has left) goes to `stderr_log`, not the run's output."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernel(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
            stderr_log.parent.mkdir(parents=True, exist_ok=True)
            with open(stderr_log, "ab") as fh:  # the kernel has its own copy once started
                return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": fh})

    return LoggedKernel


@dataclass(frozen=True)
class RunOptions:
    """How a run goes, beyond the profile and its places."""

    run_id: str = ""                # default: a new one (time, profile, random)
    use_cache: bool = True          # False: build every package (serpent run --rebuild)
    recheck: bool = False           # a stage whose packages all come from the cache checks again
    metrics_db: str | None = None   # default: paths.db_path()
    log_output: bool = True         # stream the notebooks' output
    kernel: str = KERNEL
    cluster: str = ""               # a Dask scheduler's address (serpent run --cluster)
    workers: int = 0                # a LocalCluster of this many processes instead (serpent run --workers)
    cluster_workers: tuple[str, ...] = ()  # only these workers of the cluster, by name (serpent reproduce)


def run_stages(profile: Profile, stages: list[int], run_dir: Path, work_dir: Path,
               options: RunOptions = RunOptions()) -> RunInfo:
    """Execute the stages' notebooks in order; raise StageFailed at the first failing one.
    `options.recheck`: a stage whose packages all come from the cache runs its checks again
    instead of replaying those of the run that built it.

    Whatever happens, the run directory ends with `run.json`, the records so far, `index.html`
    and the notebooks' HTML, and the run is added to the metrics database."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    run_dir, work_dir = Path(run_dir).resolve(), Path(work_dir).resolve()
    info = RunInfo(run_id=options.run_id or new_run_id(profile.name), profile=profile.name, run_dir=str(run_dir), work_dir=str(work_dir),
                   host=host_facts(), started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    plan = []
    for n in stages:  # validate every stage's parameters before anything runs
        notebook = NOTEBOOKS / STAGE_NOTEBOOKS[n]
        if not notebook.exists():
            raise SerpentError(f"stage {n} has no notebook yet ({notebook})", "pick another --stage")
        params = {**profile.parameters(n), "work_dir": str(work_dir), "run_dir": str(run_dir),
                  "run_id": info.run_id, "use_cache": options.use_cache, "recheck": options.recheck}
        if options.cluster or options.workers:
            params["cluster"] = options.cluster  # a LocalCluster's address is set once it is up
            params["cluster_workers"] = list(options.cluster_workers)
        check_parameters(notebook, params, f"{profile.path} (stage {n})")
        plan.append((n, notebook, params))
    require_kernel(options.kernel)
    preflight()  # a host that forbids the sandbox says so now, not an hour in
    if options.cluster:  # before stage 0 and the lock: a wrong address is said at once
        from ..build.remote import connect
        connect(options.cluster, "10s").close()
    lock_work_dir(work_dir, f"serpent run {info.run_id}")
    hand_down(work_dir)
    # Stage 0 before any notebook: made if missing (minutes, with progress), every file checked if present.
    info.seed = ensure_seed(profile.common.get("seed") or {}, thorough=True).facts()
    run_dir.mkdir(parents=True, exist_ok=True)
    info.stages = {str(n): "pending" for n in stages}
    info.save()
    t0 = time.monotonic()
    local = None
    try:
        if options.workers:
            from ..build.remote import local_cluster
            local = local_cluster(options.workers, work_dir)
            log.info("cluster: %d local workers at %s", options.workers, local.scheduler_address)
            for _, _, params in plan:
                params["cluster"] = local.scheduler_address
        for n, notebook, params in plan:
            log.info("stage %d: executing %s", n, notebook.name)
            info.stages[str(n)] = "running"
            info.save()
            try:
                papermill.execute_notebook(str(notebook), str(run_dir / notebook.name), parameters=params,
                                           kernel_name=options.kernel, cwd=str(PROJECT), log_output=options.log_output,
                                           progress_bar=False, report_mode=False,
                                           kernel_manager_class=logged_kernel(run_dir / "logs" / f"kernel-stage{n}.log"))
            except PapermillExecutionError as exc:
                if exc.ename == "KeyboardInterrupt":  # the kernel was interrupted: as ^C on the run
                    raise KeyboardInterrupt from None
                info.stages[str(n)] = "failed"
                failure = StageFailed(n, run_dir / notebook.name, failed_phase(run_dir, n), f"{exc.ename}: {exc.evalue}")
                info.failure = failure.message
                raise failure from None
            info.stages[str(n)] = "passed"
    finally:
        if local is not None:
            local.close()
        for k, v in info.stages.items():
            if v in ("pending", "running"):
                info.stages[k] = "not run" if v == "pending" else "interrupted"
        info.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        info.duration_s = round(time.monotonic() - t0, 1)
        info.save()
        finish_run(run_dir, options.metrics_db)
    return info


def finish_run(run_dir: Path, metrics_db: str | None = None) -> None:
    """Reports and the metrics database; a problem here is logged, never hides the run's own outcome."""
    from . import cost
    from .history import History
    from .report import write_index

    try:  # before the report, which shows it
        with History(metrics_db) as history:
            cost.write(run_dir, history)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not work out what the result of %s cost: %s", run_dir, exc)
    try:
        log.info("report: %s", write_index(run_dir))
    except Exception as exc:  # noqa: BLE001 - the run's outcome matters more than its report
        log.warning("could not write the report of %s: %s", run_dir, exc)
    try:
        with History(metrics_db) as history:
            log.info("metrics: run %s added to %s", history.ingest(run_dir).run_id, history.path)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not add %s to the metrics database: %s", run_dir, exc)
