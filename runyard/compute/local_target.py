"""The ``local`` compute target: runs on this machine, one detached supervisor process per run.

Runtime state lives in ``WORKSPACE/local/``: ``runs/<run id>/`` (the request, the supervisor's pid and log, the
working copy ``wd/`` and the live logs while the run is on), ``queue/`` (see ``local_queue.py``).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import env_vars
from runyard.compute.api import (
    BUILD_LOG_NAME,
    KILL_GRACE,
    LOG_MAX_MB,
    ComputeTarget,
    RunDescription,
    RunRef,
    SubmitRequest,
    TargetOption,
    ordered_log_names,
    run_environment,
    stored_log,
    user_log_name,
)
from runyard.compute.local_queue import LocalQueue
from runyard.config.job import JobSpec
from runyard.errors import ComputeError, InvalidStatusTransition, NotFound
from runyard.launchers import NodeContext, launcher_for
from runyard.status import RunStatus
from runyard.submission.logfiles import decode_chunks, follow as follow_file

if TYPE_CHECKING:
    from runyard.submission.environments import EnvironmentPlan
    from runyard.submission.snapshot import Snapshot


def gpu_ids() -> list[str]:
    """The GPUs this machine offers (CUDA_VISIBLE_DEVICES when set, else the indexes nvidia-smi lists)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("GPU ")]


def gpus_for_slot(gpus: list[str], slot: int, capacity: int) -> list[str]:
    """The GPUs a run in queue slot ``slot`` of ``capacity`` uses: every ``capacity``-th one from its slot on (one
    GPU per run when there are as many slots as GPUs, all of them when one run at a time)."""
    return [g for i, g in enumerate(gpus) if i % capacity == slot % capacity] or gpus


def free_ports(count: int, host: str = "127.0.0.1") -> tuple[int, ...]:
    """``count`` distinct ports free on ``host`` now (for rendezvous and task addresses of distributed jobs)."""
    import socket

    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


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
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot", environment: "EnvironmentPlan") -> SubmitRequest:
        run_id = run.run_id
        pool, capacity, gpus = "cpu", self.settings["max_concurrent_runs"], []
        if job.use_gpu:
            gpus = gpu_ids()
            if gpus:
                pool, capacity = "gpu", self.settings["max_concurrent_gpu_runs"] or len(gpus)
            elif os.environ.get(env_vars.ALLOW_CPU_FALLBACK) != "1":
                raise ComputeError(
                    "use_gpu=True but this machine has no GPU (nvidia-smi lists none, or CUDA_VISIBLE_DEVICES is "
                    f"empty) — submit with use_gpu=False, to a compute target with GPUs, or set "
                    f"{env_vars.ALLOW_CPU_FALLBACK}=1 to run it on the CPU"
                )
            else:
                import warnings

                from runyard.errors import RunyardWarning

                warnings.warn(f"use_gpu=True but this machine has no GPU: the run uses the CPU "
                              f"({env_vars.ALLOW_CPU_FALLBACK}=1)", RunyardWarning, stacklevel=4)
        if self.settings["supervisor_start"] not in ("auto", "spawn"):
            raise ComputeError(f"supervisor_start must be 'auto' or 'spawn', got {self.settings['supervisor_start']!r}")
        if capacity < 1:
            raise ComputeError(f"compute target {self.name!r}: the capacity of the {pool} pool must be >= 1, got {capacity}")
        if job.node_count > 1:
            raise ComputeError(
                f"node_count={job.node_count}: the local target is this one machine — use process_count_per_node "
                "for several processes here, or submit to a Ray compute target for several nodes"
            )
        run_dir = self.run_dir(run_id)
        workdir = run_dir / "wd"
        launcher = launcher_for(job)
        launcher.check(job)
        run_env = run_environment(self.workspace, job, run, str(workdir))
        node = NodeContext(node_rank=0, hosts=("127.0.0.1",), ports=free_ports(launcher.ports_needed(job)),
                           interpreter=environment.python, env_names=tuple(run_env), as_root=os.geteuid() == 0)
        processes = []
        for p in launcher.processes(job, node):
            env = {**run_env, **p.env}
            argv = list(p.argv)
            if environment.docker:
                from runyard.submission.environments import docker_argv

                import runyard

                mounts = [str(self.workspace.path), str(Path(runyard.__file__).resolve().parent),
                          *([environment.path] if environment.path else [])]
                argv = docker_argv(environment.docker, argv, list(env), str(workdir), mounts,
                                   gpus=",".join(gpus) if gpus else None)
            processes.append({"rank": p.rank, "local_rank": p.local_rank, "argv": argv, "env": env, "role": p.role,
                              "rank_logs": list(p.rank_logs)})
        return SubmitRequest(self.name, run_id, {
            "workspace": {"path": str(self.workspace.path), "tracking_uri": self.workspace.tracking_uri,
                          "artifact_uri": self.workspace.artifact_uri},
            "job": job.to_definition(),
            "snapshot_id": snapshot.id,
            "run_dir": str(run_dir),
            "workdir": str(workdir),
            "pool": pool,
            "capacity": capacity,
            "gpus": gpus,
            "submitted_ns": time.time_ns(),
            "settings": dict(self.settings),
            "environment": environment.to_dict(),
            "launcher": launcher.name,
            "processes": processes,
        })

    def schedule(self, request: SubmitRequest) -> str:
        payload = request.payload
        run_dir = Path(payload["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "request.json").write_text(str(request), encoding="utf-8")
        self._queue(payload["pool"], payload["capacity"]).enqueue(request.run_id, payload["submitted_ns"])
        start_supervisor(run_dir, payload["settings"]["supervisor_start"])
        return request.run_id

    # -- observe / cancel ------------------------------------------------------------------------------
    def _request(self, run_id: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.run_dir(run_id) / "request.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def supervisor_pid(self, run_id: str) -> int | None:
        """The pid of the run's live supervisor on this machine, if any."""
        try:
            pid, started = (self.run_dir(run_id) / "supervisor.pid").read_text().split()
        except (OSError, ValueError):
            return None
        import psutil

        try:
            proc = psutil.Process(int(pid))
            return proc.pid if abs(proc.create_time() - float(started)) < 1.0 else None  # not a reused pid
        except (psutil.Error, ValueError):
            return None

    def describe(self, run_id: str) -> RunDescription | None:
        try:
            info = self.workspace.metadata.get_run(run_id)
        except NotFound:
            return None
        if info.compute_target != self.name:
            return None
        request = self._request(run_id) or {}
        details: dict[str, Any] = {"supervisor_pid": self.supervisor_pid(run_id), "run_dir": str(self.run_dir(run_id))}
        if info.status == RunStatus.QUEUED and request:
            queue = self._queue(request["pool"], request["capacity"])
            details["queue_position"] = queue.position(queue.ticket_for(run_id, request["submitted_ns"]).name)
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
        environment = (self._request(run_id) or {}).get("environment") or {}
        if environment.get("ready", True) and not live.exists():
            return  # built before this run was submitted: nothing will be written
        preparing = (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING)
        done = lambda: store.get_run(run_id).status not in preparing  # noqa: E731
        yield from decode_chunks(follow_file(live, done))


# -- starting a supervisor ----------------------------------------------------------------------------
_zygote: "Zygote | None" = None  # set in a process that submits many runs from several threads (a sweep's driver)


def start_supervisor(run_dir: Path, how: str = "auto") -> None:
    """Start the detached supervisor of the run in ``run_dir``: forked (milliseconds) when this process can fork
    safely or has a zygote, else a fresh interpreter."""
    if how == "auto" and _zygote is not None:
        _zygote.start(run_dir)
    elif how == "auto" and _fork_is_safe():
        _fork_supervisor(run_dir)
    else:
        _spawn_supervisor(run_dir)


class Zygote:
    """A process forked while its parent is still single-threaded, which forks supervisors on request: a process
    that goes on to start threads (a sweep's driver) still starts runs in milliseconds instead of spawning a fresh
    interpreter for each (~0.2 s). Make it before any thread starts; ``close()`` ends it."""

    def __init__(self) -> None:
        requests_r, self._requests = os.pipe()
        self._acks, acks_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the zygote: one request per line, one byte back ("1" started, "0" failed)
            code = 0
            try:
                os.close(self._requests)
                os.close(self._acks)
                with os.fdopen(requests_r, encoding="utf-8") as requests:
                    for line in requests:
                        try:
                            _fork_supervisor(Path(line.rstrip("\n")))
                            os.write(acks_w, b"1")
                        except Exception:  # noqa: BLE001 - the requester says it
                            os.write(acks_w, b"0")
            except BaseException:  # noqa: BLE001 - never unwind into the parent's code
                code = 1
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(acks_w)
        self.pid = pid
        self._lock = threading.Lock()

    def start(self, run_dir: Path) -> None:
        with self._lock:
            os.write(self._requests, f"{run_dir}\n".encode())
            if os.read(self._acks, 1) != b"1":
                raise ComputeError(f"the zygote could not start the supervisor of {run_dir}")

    def close(self) -> None:
        os.close(self._requests)
        os.close(self._acks)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def use_zygote(zygote: "Zygote | None") -> None:
    global _zygote
    _zygote = zygote


def _fork_is_safe() -> bool:
    """Fork only a process with one thread (threads' locks would be copied held), on Linux (/proc is read)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return False
    return threads == 1  # also counts native threads (BLAS pools, gRPC…) that threading does not see


def _spawn_supervisor(run_dir: Path) -> None:
    """A fresh interpreter runs the supervisor (~0.2 s of imports before the run starts)."""
    from runyard.submission.processes import SUPERVISOR_MODULE

    log = open(run_dir / "supervisor.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: a Ctrl-C or exit of the submitter does not reach it
            close_fds=True, cwd=str(run_dir),
        )
    except OSError as exc:
        raise ComputeError(f"cannot start the supervisor in {run_dir}: {exc}") from exc
    finally:
        log.close()
    # Reap it when it ends (no zombie in a long-lived notebook); the thread dies with this process.
    threading.Thread(target=proc.wait, name=f"runyard-reap-{proc.pid}", daemon=True).start()


def _fork_supervisor(run_dir: Path) -> None:
    """Fork twice: the grandchild, in its own session and re-parented to init, runs the supervisor with every
    module this process already imported — the run starts in milliseconds instead of after a fresh interpreter's
    imports. It never returns into the caller's code: it leaves with ``os._exit``."""
    from runyard.store.metadata import release_connections

    release_connections()  # the supervisor must not inherit SQLite connections (their lock state) from here
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the middle process exits at once
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        _detach_descriptors(run_dir)
        from runyard.submission.supervisor import main

        code = main(["supervisor", str(run_dir), "forked"])
    except BaseException:  # noqa: BLE001 - whatever happens, never unwind into the submitter's stack
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _detach_descriptors(run_dir: Path) -> None:
    """Point the inherited descriptors away from what the submitter shares with others.

    stdin ← /dev/null, stdout/stderr → supervisor.log; every other inherited pipe, socket or terminal gets
    /dev/null put in its place (not closed: Python objects still own those numbers, and closing a reused number
    later would hit the wrong file). A process waiting for the submitter's output pipe to close is not kept
    waiting by the run, and a database socket shared with the submitter is never written to from here.
    """
    import stat

    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(run_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in (null, log):
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
            os.dup2(null, fd)
    os.chdir(run_dir)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _finish_canceled(store, run_id: str, message: str) -> None:
    try:
        store.set_status(run_id, RunStatus.CANCELED, error={"message": message, "code": "Canceled"})
    except InvalidStatusTransition:
        pass  # finished meanwhile: nothing to do
