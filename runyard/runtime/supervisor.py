"""The supervisor: the detached process that drives one run of the local target (DESIGN.md §3.4).

    python -m runyard.runtime.supervisor RUN_DIR        (started by LocalTarget.schedule)

Queued (waits for a slot) → Preparing (fresh working copy of the snapshot) → Starting (the launcher's processes,
asked for now, with ports free now) → Running (their output captured into capped, rotated logs; a heartbeat) →
Finalizing (``outputs/`` and ``logs/`` uploaded, also after a failure) → Completed / Failed / Canceled.
SIGTERM (``cancel``), ``CancelRequested`` in the store, or ``max_run_duration_seconds`` stop the whole
process tree: SIGTERM, then SIGKILL after a grace period.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from runyard import env_vars, plugins
from runyard.context import logger
from runyard.environments.docker import out_of_memory, remove_containers
from runyard.errors import EnvironmentBuildError, InvalidStatusTransition, NotFound, StoreError
from runyard.runtime import launch, orphans, processes
from runyard.runtime.local_queue import LocalQueue
from runyard.runtime.logfiles import BUILD_LOG_NAME, LAUNCHER_LOG, SUPERVISOR_LOG, RotatingLog, user_log_name
from runyard.runtime.request import LocalRequest, RunRequest, read_request
from runyard.status import RunStatus
from runyard.store import run_files, snapshots
from runyard.store.metadata import stop_waiting, stopping
from runyard.store.workspace_context import WorkspaceContext

_RETRYABLE = ("UserError", "NodeLost")  # failures max_run_retries restarts (not a bad environment, not a timeout)
_STATUS_POLL = 1.0  # seconds between checks for CancelRequested in the store (a cancel from another host)
_EXCEPTION_LINE = re.compile(r"^(?:\[rank\d+\]:\s*)?(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Interrupt|Exit|Fault)\b.*")
# What a failed script's last exception line says, and the way out the run's error adds to it.
_ADVICE = (
    (r"No module named 'azureml", "the script still imports Azure ML's SDK: `runyard migrate SOURCE_DIRECTORY "
                                  "--write` ports its imports to runyard's"),
    (r"No module named 'horovod|Extension horovod\.\w+ has not been built",
     "Horovod is not built in the run's environment ({python}): name horovod in its pip packages (runyard builds it "
     "for the environment's PyTorch and TensorFlow), use a TensorFlow or PyTorch estimator with MPI (as Azure's "
     "images, it then has Horovod), or build it into an interpreter you manage with `runyard env horovod {python}`"),
)


class Supervisor:
    """Drives one run through its life cycle; subclasses say where its processes are (Ray's driver) or replace
    them with other work (a sweep's driver: trials)."""

    def __init__(self, run_dir: Path, request: RunRequest | None = None) -> None:
        self.run_dir = run_dir
        self.request: RunRequest = request or read_request(run_dir)
        self.run_id: str = self.request.run_id
        self.settings: dict[str, Any] = dict(self.request.settings)
        self.workdir = Path(getattr(self.request, "workdir", None) or run_dir / "wd")
        self.log_dir = run_dir / "logs"
        self._stop = threading.Event()  # cancel asked (signal or store)
        self._stop_reason: str | None = None
        self._done = threading.Event()
        self._procs: list[processes.Captured] = []
        self._rank_pipes: list[processes.RankPipe] = []
        self._log = open(run_dir / "supervisor.txt", "a", buffering=1, encoding="utf-8")
        self._pending: list[tuple[RunStatus, float]] = []  # changes made before the store was open
        self._store: Future = Future()
        self._synced: dict[str, tuple[int, int]] = {}  # log file → (size, mtime) last uploaded
        self._attempt = 0  # attempts made before this one (max_run_retries)
        self._data_env: dict[str, str] = {}  # the inputs' paths (plugins.RUN_INPUTS)
        self._slot: int | None = None
        self._container_states: dict[int, dict[str, Any]] = {}  # rank → how its container ended (OOMKilled…)
        self.ws = WorkspaceContext.from_ref(self.request.workspace)

    @property
    def store(self):
        """The metadata store. Importing SQLAlchemy and opening it takes ~0.1 s, so it happens in a thread
        started first thing, while the main thread takes a slot, writes the working copy and starts the processes."""
        return self._store.result()

    def _open_store(self) -> None:
        try:
            store = self.ws.metadata
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the store
            self._store.set_exception(exc)
            return
        self._store.set_result(store)
        from runyard.context import heartbeat

        heartbeat.start(lambda: [(store, self.run_id)], self._done)

    def say(self, message: str) -> None:
        now = time.time()
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} {message}\n")

    # -- the life cycle ------------------------------------------------------------------------------
    def run(self) -> int:
        (self.run_dir / "supervisor.pid").write_text(f"{os.getpid()} {_create_time()}")
        orphans.register(self.run_id, self.run_dir)  # should this process die, whoever fails the run cleans up
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop("canceled", signaled=True))
        signal.signal(signal.SIGINT, lambda *_: self._request_stop("canceled", signaled=True))
        threading.Thread(target=self._open_store, name="runyard-open-store", daemon=True).start()
        status, error, exit_code, started = RunStatus.FAILED, None, None, False
        try:
            for note in self.request.notes:
                self.say(note)
            started = self._wait_for_slot()
            if started:
                status, error, exit_code = self._execute_attempts()
            else:
                status = RunStatus.CANCELED
        except BaseException as exc:  # noqa: BLE001 - a supervisor bug must still end the run, never leave it Running
            self.say("supervisor error:\n" + traceback.format_exc())
            status, error = RunStatus.FAILED, {
                "message": f"runyard supervisor error: {type(exc).__name__}: {exc}", "code": "SupervisorError",
                "traceback": traceback.format_exc()[-8000:],
            }
        finally:
            self._kill_all()  # whatever the run left behind
        kept = True
        if started:  # a run canceled in the queue never started: nothing to finalize
            status, error, kept = self._finalize(status, error)
        recorded = self._set_final(status, error, exit_code)
        self._done.set()
        if recorded and kept:
            self._cleanup()
        else:
            self._leave_for_salvage(status, error, exit_code)
        return 0

    def _set_final(self, status: RunStatus, error: dict | None, exit_code: int | None) -> bool:
        """The end status must land: a store that blinks now is retried for about a minute (heartbeats go on), on
        top of each call's own wait for a database that refuses connections — unless a SIGTERM says to end now."""
        for delay in (1, 2, 4, 8, 16, 32, None):
            try:
                self._set(status, error=error, exit_code=exit_code)
                return True
            except StoreError as exc:
                if delay is None or stopping():
                    self.say(f"cannot record {status.value}: {exc}")
                    return False
                self.say(f"cannot record {status.value} yet ({exc}); retrying in {delay} s")
                time.sleep(delay)
        return False

    def _leave_for_salvage(self, status: RunStatus, error: dict | None, exit_code: int | None) -> None:
        """The store cannot be reached (and a SIGTERM says not to wait): keep the run's folder and its outcome for
        whoever fails the run for its lost heartbeat on this machine (runyard.runtime.orphans), which uploads the
        files, stores the journals and records this outcome instead of the lost heartbeat."""
        orphans.write_outcome(self.run_dir, status, error, exit_code)
        self.say(f"the store is unreachable: {status.value} and the run's files are kept in {self.run_dir} for the "
                 "next runyard process on this machine to record")
        self._log.close()

    def _wait_for_slot(self) -> bool:
        request = self.request
        assert isinstance(request, LocalRequest)
        queue = LocalQueue(self.ws.path / "local" / "queue", request.pool, request.capacity)
        ticket = queue.ticket_for(self.run_id, request.submitted_ns)
        last_check = [0.0]

        def stop() -> bool:
            if time.monotonic() - last_check[0] > _STATUS_POLL:
                last_check[0] = time.monotonic()
                self._poll_store()
            return self._stop.is_set()

        self._slot = queue.try_acquire(ticket)  # a free slot: start without touching the store
        if self._slot is None:
            self._poll_store()
            self._slot = queue.acquire(ticket, stop)
        if self._slot is None:
            self.say("canceled while queued")
            return False
        self.say(f"got a {request.pool} slot")
        return True

    def _execute_attempts(self) -> tuple[RunStatus, dict | None, int | None]:
        """Run the job; with ``max_run_retries``, a failed attempt (a rank's error, a lost node) restarts every rank,
        and ``./outputs`` is kept for the next attempt (scripts resume from their checkpoints there)."""
        retries = self.request.job.max_run_retries
        while True:
            status, error, exit_code = self._execute()
            retryable = status == RunStatus.FAILED and (error or {}).get("code") in _RETRYABLE
            if not retryable or self._attempt >= retries or self._stop.is_set():
                if error is not None and self._attempt:
                    error = {**error, "attempts": self._attempt + 1}
                return status, error, exit_code
            self._attempt += 1
            self.say(f"attempt {self._attempt} of {retries + 1} failed ({error['message']}): restarting every rank "
                     f"(max_run_retries={retries})")
            try:
                self.store.set_tag(self.run_id, "runyard.attempt", str(self._attempt + 1))
            except Exception:  # noqa: BLE001 - informational only
                pass
            self._reset_for_retry()

    def _reset_for_retry(self) -> None:
        """Forget the failed attempt's processes (their logs go on in the same files)."""
        for proc in self._procs:
            proc.close()
        for pipe in self._rank_pipes:
            pipe.close()
        self._procs, self._rank_pipes = [], []
        shutil.rmtree(self.run_dir / "rank-fifos", ignore_errors=True)

    def _execute(self) -> tuple[RunStatus, dict | None, int | None]:
        self._set_later(RunStatus.PREPARING)
        kept = self.run_dir / "outputs-of-last-attempt"
        if self.workdir.exists():
            if self._attempt and (self.workdir / "outputs").is_dir():
                shutil.move(str(self.workdir / "outputs"), kept)
            shutil.rmtree(self.workdir)
        count = snapshots.materialize(self.request.snapshot_id, self.ws.artifacts, self.workdir)
        if kept.exists():
            shutil.move(str(kept), self.workdir / "outputs")
        self.say(f"working copy of snapshot {self.request.snapshot_id[:12]} ({count} files) in {self.workdir}")
        for folder in ("outputs", "logs"):
            (self.workdir / folder).mkdir(exist_ok=True)
        failure = self._prepare_inputs() or self._prepare_environment()
        if failure is not None:
            return failure
        if self._stop.is_set():
            return RunStatus.CANCELED, None, None
        self._set_later(RunStatus.STARTING)
        max_bytes = int(self.settings["log_max_mb"] * (1 << 20))
        gpu_env = self._gpu_env()
        # The launcher is asked now, with the slot held: the ports it gets are free now, however long the run queued.
        overrides = {**gpu_env, **self._data_env}
        specs = launch.this_machine(self.request, overrides)

        def sink(key: str) -> RotatingLog:
            return RotatingLog(self.run_dir / (LAUNCHER_LOG if key == "launcher" else user_log_name(int(key))),
                               max_bytes)

        node = launch.Node(self._procs, self._rank_pipes)
        try:
            launch.start_node(node, specs, launch.inherited_env(), overrides, self.workdir, self.run_dir / "rank-fifos",
                              sink, self.say)
        except launch.StartFailed as exc:
            return RunStatus.FAILED, {"message": str(exc), "code": "StartFailed", "rank": exc.rank}, None
        self._set_later(RunStatus.RUNNING)
        self._record_pending()
        return self._monitor()

    def _prepare_inputs(self) -> tuple[RunStatus, dict | None, int | None] | None:
        """Datastore paths and datasets become paths on this machine (``self._data_env``); None when ready."""
        self._data_env = {}
        specs = self.request.job.inputs
        if not specs:
            return None
        try:
            self._data_env = plugins.load(plugins.RUN_INPUTS, "data").prepare(self.ws, specs, self.workdir, self.say)
        except Exception as exc:  # noqa: BLE001 - a missing or changed input fails the run, with the reason
            self.say("inputs could not be prepared:\n" + traceback.format_exc())
            return RunStatus.FAILED, {"message": f"the run's inputs could not be prepared: {exc}",
                                      "code": "DataError", "where": "the inputs"}, None
        return None

    def _prepare_environment(self) -> tuple[RunStatus, dict | None, int | None] | None:
        """Build the run's environment unless it is cached (a cancel stops the build); None when it is ready."""
        from runyard.environments import ensure

        plan = self.request.environment
        if plan is None or plan.key is None:
            return None
        log_path = self.run_dir / BUILD_LOG_NAME
        build_log: list = []

        def say(line: str) -> None:  # the build log exists only when something is built
            if not build_log:
                log_path.parent.mkdir(parents=True, exist_ok=True)
                build_log.append(open(log_path, "a", buffering=1, encoding="utf-8"))
                for warning in plan.warnings:
                    build_log[0].write(f"warning: {warning}\n")
            build_log[0].write(line + "\n")

        self.say(f"environment {plan.name} ({plan.key}): " + ("cached" if plan.ready else "building"))
        outcome: Future = Future()
        finished = threading.Event()

        def build() -> None:
            try:
                outcome.set_result(ensure(plan, say, cancel=self._stop))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome.set_exception(exc)
            finally:
                finished.set()

        if plan.ready:
            build()  # cached: a file check, no thread needed
        else:  # a build runs in a thread so that a cancel can stop it
            threading.Thread(target=build, name="runyard-env-build", daemon=True).start()
        try:
            while not finished.wait(0.05) and not self._stop.is_set():
                pass
            if self._stop.is_set():  # the build thread sees the same event: it kills its command and cleans up
                self.say(f"stopping the environment build: {self._stop_reason}")
                self._discard_build(plan, finished)
                return RunStatus.CANCELED, None, None
            exc = outcome.exception()
        finally:
            if build_log:
                build_log[0].close()
        if exc is None:
            return None
        self.say(f"environment build failed: {exc}" + ("" if isinstance(exc, EnvironmentBuildError) else "\n"
                 + "".join(traceback.format_exception(exc))))
        reason = " ".join(line.strip(" ×╰─▶│") for line in str(exc).splitlines() if line.strip(" ×╰─▶│"))
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:] if log_path.exists() else []
        return RunStatus.FAILED, {"message": f"environment {plan.name!r} could not be built: {reason[:2000]}",
                                  "code": "EnvironmentBuildFailed", "where": "the environment build",
                                  "last_lines": tail}, None

    def _discard_build(self, plan, finished: threading.Event) -> None:
        """A stopped build leaves nothing: its thread (which saw the cancel, ``self._stop``) kills its command and
        removes the folder; should it not manage within seconds, the folder is removed here (it has no marker)."""
        from runyard.environments import is_ready

        finished.wait(10)
        path = Path(plan.path)
        if path.exists() and not is_ready(path, bool(plan.docker)):
            shutil.rmtree(path, ignore_errors=True)

    def _gpu_env(self) -> dict[str, str]:
        """The GPUs of this run's queue slot, for every process (LOCAL_RANK picks one of them in DDP scripts)."""
        request = self.request
        if not isinstance(request, LocalRequest):
            return {}
        env = launch.slot_gpu_env(request, LocalQueue.slot_index(self._slot) if self._slot is not None else 0)
        if env:
            self.say(f"GPUs of this run: {env['CUDA_VISIBLE_DEVICES']}")
        return env

    def _monitor(self) -> tuple[RunStatus, dict | None, int | None]:
        limit = self.request.job.max_run_duration_seconds
        deadline = time.monotonic() + limit if limit else None
        next_poll = next_sync = time.monotonic()
        mains = [p for p in self._procs if p.role == "main"]
        services = [p for p in self._procs if p.role != "main"]
        while True:
            failed = next((p for p in self._procs if p.returncode not in (None, 0)), None)
            if failed is not None:
                self._kill_all()  # fail fast: stop the others
                return RunStatus.FAILED, self._failure(failed), failed.returncode
            if all(p.returncode == 0 for p in mains):
                if any(p.returncode is None for p in services):  # ps tasks (and workers under a chief) serve forever
                    self.say("every main process has ended: stopping " + ", ".join(
                        f"rank {p.rank}" for p in services if p.returncode is None))
                    self._stop_processes(services)
                return RunStatus.COMPLETED, None, 0
            if self._stop.is_set():
                self.say(f"stopping the process tree: {self._stop_reason}")
                self._kill_all()
                return RunStatus.CANCELED, None, None
            now = time.monotonic()
            if deadline is not None and now > deadline:
                self.say(f"max_run_duration_seconds={limit:g} exceeded: stopping the process tree")
                self._kill_all()
                return RunStatus.FAILED, {
                    "message": f"the run exceeded max_run_duration_seconds={limit:g} and was stopped",
                    "code": "RunTimeout", "last_lines": self._procs[0].log.last_lines(),
                }, None
            if now >= next_poll:
                next_poll = now + _STATUS_POLL
                self._poll_store()
            if now >= next_sync:
                next_sync = now + self.settings["log_sync_seconds"]
                try:
                    self._sync_logs()
                except Exception as exc:  # noqa: BLE001 - a live copy of the logs never fails a run; finalize retries
                    self.say(f"log sync failed (will retry): {exc}")
            self._housekeeping()
            if len(self._procs) == 1:
                self._procs[0].exited.wait(0.05)  # returns at once when the process ends
            else:
                time.sleep(0.05)

    def _failure(self, proc: processes.Captured) -> dict[str, Any]:
        """What went wrong, for the run's error: the failing rank, its exit code or signal, its last lines."""
        proc.drain(1.0)  # the exit can overtake the last lines (an error report, a traceback) through the pipe
        lines = proc.log.last_lines(20)
        code = proc.returncode
        rank = proc.rank
        container = self._container_states.get(proc.rank)
        # mpirun: which rank failed first (runyard's rank wrapper, else mpirun's report) — unless the kernel killed its
        # container for memory, which ends every rank in it
        if proc.rank_logs and not out_of_memory(container):
            rank, code = self._failed_rank(proc, code)
            log = self._rank_log(rank)
            if log is not None:
                lines = log.last_lines(20)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = f"was killed by {name}" + (" (segmentation fault)" if name == "SIGSEGV" else "")
        elif out_of_memory(container):
            limit = (self.request.environment.docker or {}).get("memory")
            what = "was killed: out of memory" + (f" (its container's memory limit is {limit})" if limit else
                                                  " (its container hit a memory limit)")
        else:
            what = f"exited with code {code}"
        cause = next((line.strip() for line in reversed(lines) if _EXCEPTION_LINE.match(line.strip())), None)
        if code == 125 and self.request.environment is not None and self.request.environment.docker:
            cause = next((line.strip() for line in reversed(lines) if line.startswith("docker: ")), cause)
        cause = re.sub(r"^\[rank\d+\]:\s*", "", cause) if cause else None  # torch prefixes its ranks' lines
        advice = next((text for pattern, text in _ADVICE if cause and re.search(pattern, cause)), None)
        if advice:
            python = self.request.environment.python if self.request.environment is not None else "its python"
            cause += " — " + advice.format(python=python)
        script = self.request.job.entry_script
        message = f"{script} (rank {rank}) {what}" + (f": {cause}" if cause else "")
        error = {"message": message, "code": "UserError", "rank": rank, "exit_code": code, "last_lines": lines}
        if code is not None and code < 0:
            error["signal"] = -code
        return error

    def _failed_rank(self, proc: processes.Captured, code: int | None) -> tuple[int, int | None]:
        reports = []
        for marker in (self.run_dir / "rank-fifos").glob("*.failed"):
            try:
                exit_code, at = marker.read_text().split()
                reports.append((int(at), int(marker.name.split(".")[0]), int(exit_code)))
            except (OSError, ValueError):
                continue
        if reports:
            _, rank, code = min(reports)
            return rank, code
        report = "\n".join(proc.log.last_lines(60))
        named = (re.search(r"Process name: \[\[\d+,\d+\],(\d+)\]\s+Exit code:\s+(\d+)", report)
                 or re.search(r"MPI_ABORT was invoked on rank (\d+) in communicator \S+\s+with errorcode (\d+)", report))
        return (int(named.group(1)), int(named.group(2))) if named else (proc.rank, code)

    def _finalize(self, status: RunStatus, error: dict | None) -> tuple[RunStatus, dict | None, bool]:
        """Upload outputs and logs and store the journals; say whether everything is in the store now."""
        try:
            self._set(RunStatus.FINALIZING)
        except Exception:  # noqa: BLE001 - e.g. already Canceled by a reader; uploading still matters
            pass
        for proc in self._procs:
            proc.close()
        for pipe in self._rank_pipes:
            pipe.close()
        kept = self.ws.replay_journals(self.say) >= 0  # values a process that died had logged but not stored
        try:
            self._sync_logs()
            self._upload_outputs()
        except StoreError as exc:  # the files are here; the database cannot index them now: keep the outcome
            self.say(f"upload failed, the store is unreachable: {exc}")
            kept = False
        except Exception as exc:  # noqa: BLE001
            self.say(f"upload failed: {exc}")
            if status == RunStatus.COMPLETED:
                status, error = RunStatus.FAILED, {"message": f"could not upload outputs/logs: {exc}", "code": "UploadFailed"}
        self.say(f"run ends {status.value}")
        self._log.flush()
        try:
            run_files.put(self.ws, self.run_id, [(SUPERVISOR_LOG, self.run_dir / "supervisor.txt")], show_progress=False)
        except StoreError:
            kept = False
        except Exception:  # noqa: BLE001 - the supervisor's own log is best effort
            pass
        return status, error, kept

    def _upload_outputs(self) -> None:
        outputs = self.workdir / "outputs"
        if outputs.is_dir() and any(outputs.iterdir()):
            run_files.put(self.ws, self.run_id, run_files.folder_items("outputs", outputs, self.say),
                          show_progress=False)

    def _sync_logs(self) -> None:
        """Upload captured logs and the script's ./logs that changed since the last sync."""
        seen = self._synced
        changed: list[tuple[str, str]] = []
        for base, prefix in ((self.log_dir, "logs"), (self.workdir / "logs", "logs")):
            if not base.is_dir():
                continue
            for path in base.rglob("*"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                if not path.is_file():
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                if seen.get(str(path)) != stamp:
                    seen[str(path)] = stamp
                    changed.append((f"{prefix}/{path.relative_to(base).as_posix()}", str(path)))
        for _attempt in range(3):
            if not changed:
                return
            try:
                missing = [p for _, p in changed if not os.path.isfile(p)]
                if missing:
                    raise FileNotFoundError(missing[0])
                run_files.put(self.ws, self.run_id, changed, show_progress=False)
                return
            except (FileNotFoundError, NotFound):
                # A log rotated between listing and copying: its new name is picked up by the next sync.
                gone = [(n, p) for n, p in changed if not os.path.isfile(p)]
                if not gone:
                    raise
                for _, path in gone:
                    seen.pop(path, None)
                changed = [c for c in changed if c not in gone]
        raise RuntimeError("log files kept disappearing while they were uploaded")

    # -- where the processes are (overridden by the Ray driver, whose processes live on node agents) ---------------
    def _kill_all(self) -> None:
        """Stop every process of the run: SIGTERM, SIGKILL after the grace period; then remove its containers (a
        docker client killed leaves its container running), remembering how each one ended."""
        processes.kill_tree(self.settings["kill_grace_seconds"])
        environment = self.request.environment
        if environment is not None and environment.docker:
            self._container_states.update(remove_containers(self.run_id))

    def _stop_processes(self, procs: list) -> None:
        """Stop some of the run's processes (services once the main ones have ended)."""
        processes.stop_processes(procs, self.settings["kill_grace_seconds"])

    def _housekeeping(self) -> None:
        """Called every 50 ms while the run's processes run."""
        processes.reap_orphans(self._procs)

    def _rank_log(self, rank: int) -> RotatingLog | None:
        """The log of a rank started by another process (mpirun), with everything it wrote so far."""
        pipe = next((p for p in self._rank_pipes if p.rank == rank), None)
        if pipe is None:
            return None
        pipe.drain(1.0)
        return pipe.log

    # -- helpers ------------------------------------------------------------------------------------
    def _request_stop(self, reason: str, signaled: bool = False) -> None:
        self._stop_reason = self._stop_reason or reason
        self._stop.set()
        if signaled:  # end within the kill grace whatever the store's state: its calls stop waiting for it
            stop_waiting()

    def _poll_store(self) -> None:
        try:
            status = self.store.get_run(self.run_id).status
        except Exception:  # noqa: BLE001 - the store may blink; the next poll retries
            return
        # Only a cancel stops the processes: a script may mark its own run Failed and still have work to do.
        if status in (RunStatus.CANCEL_REQUESTED, RunStatus.CANCELED):
            self._request_stop("canceled")

    def _set_later(self, status: RunStatus) -> None:
        self.say(status.value)
        self._pending.append((status, time.time()))

    def _record_pending(self) -> None:
        """Record status changes made before the store was open, each with the time it happened."""
        pending, self._pending = self._pending, []
        for status, at in pending:
            self._write_status(status, at=at)

    def _set(self, status: RunStatus, **kwargs: Any) -> None:
        self._record_pending()
        self.say(status.value)
        self._write_status(status, **kwargs)

    def _write_status(self, status: RunStatus, **kwargs: Any) -> None:
        try:
            info = self.store.set_status(self.run_id, status, **kwargs)
        except InvalidStatusTransition as exc:
            self.say(f"status {status.value} not recorded: {exc}")
            return
        if info.status == RunStatus.CANCEL_REQUESTED and not status.is_terminal():
            self._request_stop("canceled")

    def _cleanup(self) -> None:
        """Everything worth keeping is in the run history now; the working copy and live logs go."""
        self._log.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        orphans.unregister(self.run_id)


def _create_time() -> float:
    import psutil

    return psutil.Process().create_time()


def driver_for(kind: str) -> type[Supervisor]:
    """What drives a run of ``kind``: the Supervisor for a script; another kind's driver (a sweep's) is registered by
    the package that adds the kind (``plugins.RUN_KINDS``), never imported here."""
    return Supervisor if kind == "script" else plugins.load(plugins.RUN_KINDS, kind)


def main(argv: list[str]) -> int:
    """``supervisor RUN_DIR [forked]``: drive the run whose request is in RUN_DIR."""
    if len(argv) not in (2, 3):
        print("usage: python -m runyard.runtime.supervisor RUN_DIR", file=sys.stderr)
        return 2
    processes.become_subreaper()
    os.environ.setdefault(env_vars.STORE_PATIENCE, "300")  # a supervisor rides out a database restart or a full server
    processes.set_process_name()  # what ps/top show (a forked one still has the submitter's argv), and kill_tree spares
    run_dir = Path(argv[1])
    try:
        request = read_request(run_dir)
        supervisor = driver_for(request.kind)(run_dir, request)
    except Exception as exc:  # noqa: BLE001 - say why on the run instead of leaving it Queued until its heartbeat ages
        traceback.print_exc()
        fail_unsupervised(run_dir, exc)
        return 1
    supervisor.say(f"supervisor pid {os.getpid()} ({'forked from the submitter' if argv[2:] == ['forked'] else 'spawned'})")
    try:
        return supervisor.run()
    finally:
        # What this process logged itself (a sweep's best-so-far curve) is stored and its journal removed now: a
        # forked supervisor leaves with os._exit, which skips the logger's atexit flush. After a SIGTERM it does not
        # wait for the database: the journal keeps the values for whoever opens the workspace next.
        logger.close_all(timeout=1.0 if stopping() else 30.0)


def fail_unsupervised(run_dir: Path, exc: Exception) -> None:
    """Mark the run Failed when its supervisor cannot even start (an unreadable request, an unreachable store)."""
    try:
        request = json.loads((run_dir / "request.json").read_text(encoding="utf-8"))
        ws = WorkspaceContext.from_ref(request["workspace"])
        run_id = request["run"]["run_id"] if "run" in request else request["run_id"]
        ws.metadata.set_status(run_id, RunStatus.FAILED, error={
            "message": f"the run's supervisor could not start: {type(exc).__name__}: {exc}", "code": "SupervisorError",
            "traceback": traceback.format_exc()[-8000:]})
    except Exception:  # noqa: BLE001 - nothing more to do: the heartbeat timeout will fail the run
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
