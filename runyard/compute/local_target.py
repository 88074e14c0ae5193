"""The ``local`` compute target: runs on this machine, one detached supervisor process per run.

Runtime state lives in ``WORKSPACE/local/``: ``runs/<run id>/`` (the request, the supervisor's pid and log, the
working copy ``wd/`` and the live logs while the run is on), ``queue/`` (see ``local_queue.py``).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import env_vars
from runyard.compute.api import (
    KILL_GRACE,
    LOG_MAX_MB,
    ComputeTarget,
    RunDescription,
    RunRef,
    REQUIRE_GPU,
    TargetOption,
)
from runyard.config.job import JobSpec
from runyard.errors import ComputeError, InvalidStatusTransition, NotFound, RunyardError
from runyard.launchers import launcher_for
from runyard.runtime import orphans
from runyard.runtime.launch import run_environment
from runyard.runtime.local_queue import LocalQueue
from runyard.runtime.logfiles import (
    BUILD_LOG_NAME,
    decode_chunks,
    follow as follow_file,
    ordered_log_names,
    stored_log,
    user_log_name,
)
from runyard.runtime.request import LocalRequest, read_request, write_request
from runyard.runtime.resources import gpu_ids
from runyard.runtime.supervisor_start import start_supervisor
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.environments import EnvironmentPlan
    from runyard.store.snapshots import Snapshot


class LocalTarget(ComputeTarget):
    """This machine. Runs beyond the capacity of their pool (CPU or GPU) wait in Queued and start in order."""

    type = "local"
    options = (
        TargetOption("max_concurrent_runs", int, os.cpu_count() or 1,
                     "CPU runs executing at once; more wait in Queued", env_vars.LOCAL_MAX_RUNS),
        TargetOption("max_concurrent_gpu_runs", int, None,
                     "GPU runs (use_gpu=True) executing at once (default: one per GPU)", env_vars.LOCAL_MAX_GPU_RUNS),
        LOG_MAX_MB,
        KILL_GRACE,
        TargetOption("log_sync_seconds", float, 10.0,
                     "seconds between uploads of a running run's logs to the artifact store", env_vars.LOG_SYNC_SECONDS),
        REQUIRE_GPU,
        TargetOption("supervisor_start", str, "auto",
                     "how a run's supervisor starts: auto (forked from the submitting process when it has a single "
                     "thread, on Linux: the run starts in ~20 ms) or spawn (always a fresh interpreter: ~0.2 s)",
                     env_vars.SUPERVISOR_START),
    )

    @property
    def root(self) -> Path:
        return self.workspace.path / "local"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def _queue(self, pool: str, capacity: int) -> LocalQueue:
        return LocalQueue(self.root / "queue", pool, capacity)

    # -- dryrun / schedule --------------------------------------------------------------------------
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot | None", environment: "EnvironmentPlan",
                kind: str, extra: dict[str, Any]) -> LocalRequest:
        if self.settings["supervisor_start"] not in ("auto", "spawn"):
            raise ComputeError(f"supervisor_start must be 'auto' or 'spawn', got {self.settings['supervisor_start']!r}")
        notes: tuple[str, ...] = ()
        if kind == "script":
            note = self.on_cpu_instead(job, bool(gpu_ids()), "this machine")
            if note:
                job, notes = replace(job, use_gpu=False), (note,)
            pool, capacity, gpus = self._pool(job)
            if capacity < 1:
                raise ComputeError(f"compute target {self.name!r}: the capacity of the {pool} pool must be >= 1, "
                                   f"got {capacity}")
            if job.node_count > 1:
                raise ComputeError(
                    f"node_count={job.node_count}: the local target is this one machine — use process_count_per_node "
                    "for several processes here, or submit to a Ray compute target for several nodes"
                )
            launcher_for(job).check(job)  # a missing mpirun is an error now; the processes are asked for at start
        else:  # another run kind's driver (a sweep's): no slot of its own, its work queues for slots
            pool, capacity, gpus = kind, 1, []
        run_dir = self.run_dir(run.run_id)
        workdir = run_dir / "wd"
        return LocalRequest(
            target=self.name, run=run, workspace=self.workspace.ref(), job=job,
            snapshot_id=snapshot.id if snapshot is not None else None, environment=environment,
            settings=dict(self.settings), run_env=run_environment(self.workspace, job, run, str(workdir)),
            submitted_ns=time.time_ns(), kind=kind, launcher=launcher_for(job).name, extra=extra,
            run_dir=str(run_dir), workdir=str(workdir), pool=pool, capacity=capacity, gpus=tuple(gpus), notes=notes,
        )

    def plan_environment(self, job: JobSpec) -> "EnvironmentPlan":
        # a use_gpu job on this machine without a GPU gets the CPU package variants (checked, not warned, here)
        return super().plan_environment(replace(job, use_gpu=False) if job.use_gpu and not gpu_ids() else job)

    def _pool(self, job: JobSpec) -> tuple[str, int, list[str]]:
        """The queue a job waits in (cpu or gpu), its capacity, and the GPUs it shares out."""
        if not job.use_gpu:
            return "cpu", self.settings["max_concurrent_runs"], []
        gpus = gpu_ids()
        return "gpu", self.settings["max_concurrent_gpu_runs"] or len(gpus), gpus

    def schedule(self, request: LocalRequest) -> str:  # type: ignore[override]
        run_dir = Path(request.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_request(run_dir, request)
        if request.kind == "script":  # another kind's driver takes no slot (its work queues for them)
            self._queue(request.pool, request.capacity).enqueue(request.run_id, request.submitted_ns)
        start_supervisor(run_dir, request.settings["supervisor_start"])
        return request.run_id

    # -- observe / cancel ------------------------------------------------------------------------------
    def _request(self, run_id: str) -> LocalRequest | None:
        try:
            request = read_request(self.run_dir(run_id))
        except (OSError, ValueError, RunyardError):  # not written yet, or not readable: nothing to tell
            return None
        return request if isinstance(request, LocalRequest) else None

    def supervisor_pid(self, run_id: str) -> int | None:
        """The pid of the run's live supervisor on this machine, if any."""
        return orphans.supervisor_pid(self.run_dir(run_id))

    def describe(self, run_id: str) -> RunDescription | None:
        try:
            info = self.workspace.metadata.get_run(run_id)
        except NotFound:
            return None
        if info.compute_target != self.name:
            return None
        request = self._request(run_id)
        details: dict[str, Any] = {"supervisor_pid": self.supervisor_pid(run_id), "run_dir": str(self.run_dir(run_id))}
        if info.status == RunStatus.QUEUED and request is not None:
            queue = self._queue(request.pool, request.capacity)
            details["queue_position"] = queue.position(queue.ticket_for(run_id, request.submitted_ns).name)
            details["slots_free"] = queue.capacity - queue.running()
        return RunDescription(run_id, self.name, info.status.value, details)

    def cancel(self, run_id: str, wait: float = 10.0) -> None:
        store = self.workspace.metadata
        info = store.get_run(run_id)
        if info.status.is_terminal():
            return
        try:
            store.set_status(run_id, RunStatus.CANCEL_REQUESTED)
        except InvalidStatusTransition:
            return  # it finished meanwhile
        pid = self.supervisor_pid(run_id)
        if pid is None:
            # No supervisor here: it has not started yet (it will see CancelRequested and stop) or it is gone.
            deadline = time.monotonic() + min(wait, 2.0)
            while time.monotonic() < deadline and self.supervisor_pid(run_id) is None:
                if store.get_run(run_id).status.is_terminal():
                    return
                time.sleep(0.1)
            pid = self.supervisor_pid(run_id)
            if pid is None:
                _finish_canceled(store, run_id, "canceled; no supervisor was running")
                return
        try:
            os.kill(pid, signal.SIGTERM)  # the supervisor stops the process tree, uploads logs, ends Canceled
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if store.get_run(run_id).status.is_terminal():
                return
            time.sleep(0.05)

    # -- logs ----------------------------------------------------------------------------------------
    def log_iter(self, run_id: str, rank: int = 0, follow: bool = False) -> Iterator[str]:
        store = self.workspace.metadata
        run_dir = self.run_dir(run_id)
        live = run_dir / user_log_name(rank)
        if not follow:
            if live.exists() and not store.get_run(run_id).status.is_terminal():
                parts = [p.relative_to(run_dir).as_posix() for p in live.parent.glob(f"user_log_{rank}*.txt")]
                for name in ordered_log_names(parts, rank):  # rotated parts, oldest first, as stored_log reads them
                    with open(run_dir / name, "rb") as f:
                        yield from decode_chunks(iter(lambda f=f: f.read(1 << 16), b""))
                return
            yield from stored_log(self.workspace, run_id, rank)
            return
        emitted = False
        finished = lambda: store.get_run(run_id).status.is_terminal()  # noqa: E731
        for text in decode_chunks(follow_file(live, finished)):
            emitted = True
            yield text
        if not emitted:  # the run ended before its live log could be read: read the stored copy
            yield from stored_log(self.workspace, run_id, rank)

    def build_log_iter(self, run_id: str, follow: bool = False) -> Iterator[str]:
        store = self.workspace.metadata
        live = self.run_dir(run_id) / BUILD_LOG_NAME
        if not follow:
            if live.exists():
                yield live.read_text(encoding="utf-8", errors="replace")
            else:
                yield from super().build_log_iter(run_id)
            return
        request = self._request(run_id)
        environment = request.environment if request is not None else None
        if (environment is None or environment.ready) and not live.exists():
            return  # built before this run was submitted: nothing will be written
        preparing = (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING)
        done = lambda: store.get_run(run_id).status not in preparing  # noqa: E731
        yield from decode_chunks(follow_file(live, done))


def _finish_canceled(store, run_id: str, message: str) -> None:
    try:
        store.set_status(run_id, RunStatus.CANCELED, error={"message": message, "code": "Canceled"})
    except InvalidStatusTransition:
        pass  # finished meanwhile: nothing to do
