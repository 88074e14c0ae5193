"""The driver of a run on a Ray cluster: the run's supervisor, started as a Ray job by ``RayTarget.schedule``.

    python -m runyard.compute.ray_driver REQUEST        (REQUEST: the encoded SubmitRequest payload)

Queued (a placement group: one bundle per node of the job; waits while the cluster is busy) → Preparing (a
``NodeAgent`` actor in each bundle fetches the snapshot and builds or reuses the environment on its node) →
Starting (each node's processes from the launcher, with every node's real address and ports) → Running (output
pulled from the agents into per-rank logs, uploaded every ``log_sync_seconds``; exit codes; a lost agent fails
the run naming its node) → Finalizing (each node uploads its ``outputs/``, node 0 last) → Completed / Failed /
Canceled. The life cycle, status handling, log upload and error reports are the local supervisor's
(``runyard.runtime.supervisor``), and so is the loop that starts a node's processes (``runyard.runtime.launch``);
this module only says where the processes are.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runyard import env_vars, environments, plugins
from runyard.compute.ray_target import decode_request
from runyard.config.job import JobSpec
from runyard.environments.docker import remove_containers
from runyard.errors import ComputeError, DataError, EnvironmentBuildError, NotFound
from runyard.launchers import ProcessSpec, launcher_for
from runyard.runtime import launch, processes
from runyard.runtime.logfiles import BUILD_LOG_NAME, LAUNCHER_LOG, RotatingLog, user_log_name
from runyard.runtime.request import RayRequest, write_request
from runyard.runtime.resources import free_ports
from runyard.runtime.supervisor import Supervisor, fail_unsupervised
from runyard.status import RunStatus
from runyard.store import run_files, snapshots
from runyard.store.workspace_context import WorkspaceContext

_BUFFER_CAP = 8 << 20  # output an agent holds for the driver between two polls; older bytes are dropped past it
_POLL = 0.1  # seconds between polls of the agents while the run's processes run


def node_scratch(run_id: str, node_rank: int) -> Path:
    """Where a node keeps a run's working copy and rank FIFOs (short: Unix socket and FIFO paths are limited)."""
    return Path(tempfile.gettempdir()) / "runyard-ray" / run_id / f"node{node_rank}"


def workspace_here(ws: dict[str, str], fallback: Path) -> WorkspaceContext:
    """The run's workspace on this machine: its own folder when this machine has it, else ``fallback`` holding
    only a config (the stores are reached through their URIs)."""
    path = ws["path"] if os.path.isdir(ws["path"]) else str(fallback)
    return WorkspaceContext.from_ref({**ws, "path": path})


class OutputBuffer:
    """A process's output held for the driver: what ``Captured`` and ``RankPipe`` write, taken by ``poll``."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._data += data
            if len(self._data) > _BUFFER_CAP:
                cut = len(self._data) - _BUFFER_CAP
                del self._data[:cut]
                self._dropped += cut

    def take(self) -> bytes:
        with self._lock:
            data, self._data = bytes(self._data), bytearray()
            if self._dropped:
                data = f"\n[runyard: {self._dropped} bytes of output were dropped: the driver fell behind]\n".encode() + data
                self._dropped = 0
            return data

    def close(self) -> None:
        pass


class NodeAgent:
    """One node of a run (a Ray actor in that node's bundle): snapshot, environment, processes, outputs."""

    def __init__(self, run_id: str, node_rank: int, workspace: dict[str, str]) -> None:
        self.run_id, self.node_rank = run_id, node_rank
        self.dir = node_scratch(run_id, node_rank)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.workdir = self.dir / "wd"
        self.ws = workspace_here(workspace, self.dir / "workspace")
        self._ws_is_local = str(self.ws.path) == workspace["path"]
        self._build_log: list[str] = []
        self._cancel = threading.Event()
        self._procs: dict[int, processes.Captured] = {}
        self._outputs: dict[str, OutputBuffer] = {}
        self._pipes: list[processes.RankPipe] = []
        # One long-lived thread starts the processes: PR_SET_PDEATHSIG fires when the *thread* that forked a
        # process ends, so a pool thread that Ray retires must never be the one.
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="runyard-agent-start")
        self._workspace_ref = dict(workspace)
        self._env_plan: environments.EnvironmentPlan | None = None
        self._data_env: dict[str, str] = {}  # this node's data inputs (paths here)
        processes.become_subreaper()

    def info(self) -> dict[str, Any]:
        import ray

        ctx = ray.get_runtime_context()
        return {"node_rank": self.node_rank, "node_id": ctx.get_node_id(), "ip": ray.util.get_node_ip_address(),
                "hostname": socket.gethostname(), "pid": os.getpid(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def free_ports(self, count: int) -> list[int]:
        return list(free_ports(count, host="0.0.0.0"))

    # -- Preparing ----------------------------------------------------------------------------------------------
    def prepare(self, snapshot_id: str, env_plan: environments.EnvironmentPlan, restore_outputs: bool,
                inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        count = snapshots.materialize(snapshot_id, self.ws.artifacts, self.workdir)
        for folder in ("outputs", "logs"):
            (self.workdir / folder).mkdir(exist_ok=True)
        if restore_outputs:  # a retried job: what the earlier attempt saved (checkpoints) is back in ./outputs
            run_files.download(self.ws, self.run_id, "outputs", self.workdir)
        say = self._say
        notes = [f"snapshot {snapshot_id[:12]}: {count} files in {self.workdir}"]
        # The workspace's cache when this machine has the workspace (one-machine clusters share it with local
        # runs), else RUNYARD_ENV_DIR, else the user's own cache on this node.
        if self._ws_is_local or os.environ.get("RUNYARD_ENV_DIR"):
            root = environments.env_root(self.ws)
        else:
            root = Path.home() / ".runyard" / "envs"
        env_plan, moved = environments.relocate(env_plan, root)
        self._env_plan = env_plan
        notes += moved
        if env_plan.key is not None:
            notes.append(f"environment {env_plan.name} ({env_plan.key}): " + ("cached" if env_plan.ready else "built"))
            if not env_plan.ready:
                for warning in env_plan.warnings:
                    say(f"warning: {warning}")
            environments.ensure(env_plan, say, cancel=self._cancel)  # says nothing when the environment is built
        data_env = {}
        if inputs:  # datastore paths and datasets, as paths on this node
            data_env = plugins.load(plugins.RUN_INPUTS, "data").prepare(self.ws, inputs, self.workdir, notes.append)
        self._data_env = data_env
        return {"python": env_plan.python, "key": env_plan.key, "notes": notes, "data_env": data_env}

    def _say(self, line: str) -> None:
        self._build_log.append(f"[node {self.node_rank}] {line}")

    def build_log(self, offset: int) -> list[str]:
        return self._build_log[offset:]

    def cancel_build(self) -> None:
        self._cancel.set()

    def check_launcher(self, job: JobSpec, hosts: list[str]) -> None:
        """What the launcher needs on this node (mpirun; SSH to the other hosts for MPI across machines)."""
        launcher = launcher_for(job)
        launcher.check(job)
        others = sorted({h for h in hosts[1:] if h != hosts[0]})
        if launcher.name == "mpi" and others:
            # mpirun on node 0 starts every rank; on other machines it would need its own daemons there (SSH), outside
            # the nodes' bundles and out of the agents' sight (no logs, no cancel). Refused rather than half done.
            raise ComputeError(
                f"the mpi backend on a Ray target needs every node of the job on one machine (mpirun on node 0 starts "
                f"all ranks); this job's nodes are on {', '.join([hosts[0], *others])} — use PyTorch DDP "
                "(PyTorchConfiguration) or TensorFlow's TF_CONFIG modes across machines, or node_count=1 with "
                "process_count_per_node for MPI")

    # -- Running ------------------------------------------------------------------------------------------------
    def start(self, specs: list[ProcessSpec]) -> None:
        self._starter.submit(self._start, specs).result()

    def _start(self, specs: list[ProcessSpec]) -> None:
        info = self.info()
        overrides = {"PYTHONPATH": launch.with_python_path(str(self.workdir)), env_vars.NODE_RANK: str(self.node_rank),
                     env_vars.NODE_ID: info["node_id"]}
        if info["gpus"]:
            overrides["CUDA_VISIBLE_DEVICES"] = overrides[env_vars.VISIBLE_GPUS] = ",".join(info["gpus"])
        # each process in a container when the environment has an image (its rank FIFOs' folder mounted too)
        specs = launch.in_containers(self._env_plan, self.run_id, self.ws.ref(), specs, {**overrides, **self._data_env},
                                     str(self.workdir), paths=[str(self.dir)])
        node = launch.Node([], self._pipes)
        try:
            launch.start_node(node, specs, launch.inherited_env(), overrides, self.workdir, self.dir / "rank-fifos",
                              lambda key: self._outputs.setdefault(key, OutputBuffer()))
        finally:
            self._procs.update({proc.rank: proc for proc in node.procs})

    def poll(self) -> dict[str, Any]:
        """New output of each rank (and of a launcher process), exit codes, failure markers of MPI ranks."""
        output = {k: data for k, b in self._outputs.items() if (data := b.take())}
        exits = {str(r): p.returncode for r, p in self._procs.items()}
        markers = {}
        fifo_dir = self.dir / "rank-fifos"
        if fifo_dir.is_dir():
            for marker in fifo_dir.glob("*.failed"):
                try:
                    markers[marker.name] = marker.read_text()
                except OSError:
                    pass
        return {"output": output, "exits": exits, "markers": markers}

    def drain(self, timeout: float = 1.0) -> None:
        for proc in self._procs.values():
            proc.drain(timeout)
        for pipe in self._pipes:
            pipe.drain(timeout)

    def stop(self, ranks: list[int] | None, grace: float) -> None:
        procs = [p for r, p in self._procs.items() if ranks is None or r in ranks]
        processes.stop_processes(procs, grace)
        if ranks is None:
            processes.kill_tree(grace)  # whatever the ranks left behind (this actor is their subreaper)
            if self._env_plan is not None and self._env_plan.docker:
                remove_containers(self.run_id)  # a container outlives its killed docker client

    # -- Finalizing ---------------------------------------------------------------------------------------------
    def upload(self) -> int:
        """This node's ``outputs/`` and the script's ``logs/`` into the run (files of the same name: last wins)."""
        for pipe in self._pipes:
            pipe.close(1.0)
        self.ws.replay_journals(self._say)  # values a process of this node logged but did not store before it died
        count = 0
        for folder in ("outputs", "logs"):
            path = self.workdir / folder
            if path.is_dir() and any(path.iterdir()):
                items = run_files.folder_items(folder, path, self._say)
                run_files.put(self.ws, self.run_id, items, show_progress=False)
                count += len(items)
        return count

    def shutdown(self) -> None:
        self.stop(None, 1.0)
        self._starter.shutdown(wait=False)
        shutil.rmtree(self.dir.parent if self.node_rank == 0 else self.dir, ignore_errors=True)


class RemoteProcess:
    """A rank on a node agent, as the supervisor's loop sees a local process (rank, role, returncode, log)."""

    def __init__(self, rank: int, role: str, rank_logs: list[int], log: RotatingLog, node: int, pump) -> None:
        self.rank, self.role, self.rank_logs, self.log, self.node = rank, role, rank_logs, log, node
        self.pid = -1
        self.exited = threading.Event()
        self._code: int | None = None
        self.lost: str | None = None  # why its node was lost
        self._pump = pump

    @property
    def returncode(self) -> int | None:
        return self._code if self.exited.is_set() else None

    def finish(self, code: int) -> None:
        if not self.exited.is_set():
            self._code = code
            self.exited.set()

    def drain(self, timeout: float) -> None:
        self._pump(final=True)

    def close(self, timeout: float = 5.0) -> None:
        self.log.close()


class RayDriver(Supervisor):
    """The local supervisor's life cycle with the processes on node agents."""

    request: RayRequest

    def __init__(self, run_dir: Path, request: RayRequest | None = None) -> None:
        super().__init__(run_dir, request)
        self.job = self.request.job
        self._agents: list[Any] = []
        self._infos: list[dict[str, Any]] = []
        self._pg = None
        self._queue_failure: dict | None = None
        self._rank_logs: dict[str, RotatingLog] = {}
        self._last_pump = 0.0
        self._last_answer: dict[int, float] = {}
        self._pump_lock = threading.Lock()
        self._pythons: list[str] = []  # each node's interpreter for the job (its environment there)

    def say(self, message: str) -> None:
        super().say(message)
        print(message, flush=True)  # also in the Ray job's log (`ray job logs`, the dashboard)

    # -- Queued: the placement group ---------------------------------------------------------------------------
    def _wait_for_slot(self) -> bool:
        import ray
        from ray.util.placement_group import placement_group

        if not ray.is_initialized():
            ray.init(logging_level="WARNING", log_to_driver=False, configure_logging=False)
        nodes, bundle = self.job.node_count, dict(self.request.bundle)
        strategy = self.request.strategy
        self._pg = placement_group([dict(bundle) for _ in range(nodes)], strategy=strategy,
                                   name=f"runyard-{self.run_id}")
        ready = self._pg.ready()
        waited, told, last_check = time.monotonic(), False, 0.0
        timeout = float(self.settings.get("queue_timeout_seconds") or 3600)
        while True:
            done, _ = ray.wait([ready], timeout=0.2)
            if done:
                break
            if time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                self._poll_store()
            if self._stop.is_set():
                self.say("canceled while queued")
                return False
            if not told and time.monotonic() - waited > 1.0:
                told = True
                what = ", ".join(f"{v:g} {k}" for k, v in bundle.items())
                self.say(f"waiting for the cluster: {nodes} node(s) with {what} each ({strategy}); it has "
                         f"{len(ray.nodes())} node(s), {ray.available_resources().get('CPU', 0):g} CPU free now")
                self._tag_waiting(f"{nodes} node(s) × {what} ({strategy})")
            if time.monotonic() - waited > timeout:
                self._queue_failure = {
                    "message": f"the Ray cluster could not give {nodes} node(s) with "
                               f"{', '.join(f'{v:g} {k}' for k, v in bundle.items())} each ({strategy}) within "
                               f"{timeout:g} s (queue_timeout_seconds)", "code": "QueueTimeout"}
                return True
        if told:
            self._tag_waiting(None)
        self.say(f"placement group ready: {nodes} bundle(s) of {bundle} ({strategy})")
        return True

    def _tag_waiting(self, what: str | None) -> None:
        try:
            if what:
                self.store.set_tag(self.run_id, "runyard.waiting_for", what)
            else:
                self.store.delete_tag(self.run_id, "runyard.waiting_for")
        except Exception:  # noqa: BLE001 - informational only
            pass

    # -- Preparing, Starting ------------------------------------------------------------------------------------
    def _execute(self) -> tuple[RunStatus, dict | None, int | None]:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if self._pg is None and not self._wait_for_slot():  # a retry: the cluster again
            return RunStatus.CANCELED, None, None
        if self._queue_failure is not None:
            return RunStatus.FAILED, self._queue_failure, None
        self._set_later(RunStatus.PREPARING)
        job = self.job
        bundle = self.request.bundle
        agent_cls = ray.remote(NodeAgent)
        for i in range(job.node_count):
            strategy = PlacementGroupSchedulingStrategy(placement_group=self._pg, placement_group_bundle_index=i)
            self._agents.append(agent_cls.options(
                num_cpus=bundle.get("CPU", 0), num_gpus=bundle.get("GPU", 0), max_concurrency=8,
                scheduling_strategy=strategy, name=f"runyard-{self.run_id}-node{i}", max_restarts=0,
            ).remote(self.run_id, i, dict(self.request.workspace)))
        self._infos = ray.get([a.info.remote() for a in self._agents], timeout=120)
        for info in self._infos:
            self.say(f"node {info['node_rank']}: Ray node {info['node_id'][:12]} at {info['ip']} "
                     f"({info['hostname']}), agent pid {info['pid']}")
        failure = self._prepare_nodes()
        if failure is not None:
            return failure
        if self._stop.is_set():
            return RunStatus.CANCELED, None, None
        self._set_later(RunStatus.STARTING)
        hosts = tuple(info["ip"] for info in self._infos)
        try:
            ray.get(self._agents[0].check_launcher.remote(job, list(hosts)))
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return RunStatus.FAILED, {"message": str(cause), "code": "LaunchFailed"}, None
        # The launcher is asked now that every node is known, with ports free on each node now.
        ports = ray.get([a.free_ports.remote(launch.ports_needed(self.request)) for a in self._agents])
        max_bytes = int(self.settings["log_max_mb"] * (1 << 20))
        starts = []
        for i, agent in enumerate(self._agents):
            node = launch.node_context(self.request, i, hosts, ports, self._pythons[i])
            specs = []
            for p in launch.node_processes(self.request, node):
                specs.append(dataclasses.replace(p, env={**p.env, **self._data_envs[i]}))
                name = LAUNCHER_LOG if p.rank_logs else user_log_name(p.rank)
                log = RotatingLog(self.run_dir / name, max_bytes)
                self._rank_logs["launcher" if p.rank_logs else str(p.rank)] = log
                for r in p.rank_logs:
                    self._rank_logs[str(r)] = RotatingLog(self.run_dir / user_log_name(r), max_bytes)
                proc = RemoteProcess(p.rank, p.role, list(p.rank_logs), log, i, self._pump)
                self._procs.append(proc)
                self.say(f"node {i} rank {p.rank}" + (f" ({p.role})" if p.role != "main" else "")
                         + f": {' '.join(p.argv)}")
            starts.append(agent.start.remote(specs))
        try:
            ray.get(starts, timeout=120)
        except (ray.exceptions.RayError, OSError) as exc:
            return RunStatus.FAILED, {"message": f"cannot start the run's processes: {exc}", "code": "StartFailed"}, None
        self._set_later(RunStatus.RUNNING)
        self._record_pending()
        return self._monitor()

    def _prepare_nodes(self) -> tuple[RunStatus, dict | None, int | None] | None:
        """Snapshot and environment on every node at once; the build log of all nodes in one file."""
        import ray

        plan = self.request.environment
        retry = self._attempt > 0
        inputs = [dict(i) for i in self.job.inputs]
        refs = [a.prepare.remote(self.request.snapshot_id, plan, retry, inputs) for a in self._agents]
        offsets = [0] * len(self._agents)
        log_path = self.run_dir / BUILD_LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        results: dict[int, Any] = {}
        with open(log_path, "a", encoding="utf-8", buffering=1) as log:
            def copy_build_logs() -> None:
                lines = ray.get([a.build_log.remote(offsets[i]) for i, a in enumerate(self._agents)])
                for i, chunk in enumerate(lines):
                    offsets[i] += len(chunk)
                    for line in chunk:
                        log.write(line + "\n")

            pending = list(refs)
            next_sync = time.monotonic()
            while pending:
                done, pending = ray.wait(pending, timeout=0.2)
                for ref in done:
                    i = refs.index(ref)
                    try:
                        results[i] = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        results[i] = exc.cause if getattr(exc, "cause", None) is not None else exc
                    except ray.exceptions.RayActorError as exc:
                        results[i] = exc
                if self._stop.is_set():
                    self.say(f"stopping the environment builds: {self._stop_reason}")
                    for agent in self._agents:
                        agent.cancel_build.remote()
                    ray.wait(pending, num_returns=len(pending), timeout=15)
                    copy_build_logs()
                    return RunStatus.CANCELED, None, None
                if time.monotonic() - next_sync > 0.5:
                    copy_build_logs()
                    self._poll_store()
                    next_sync = time.monotonic()
            copy_build_logs()
        if log_path.stat().st_size == 0:
            log_path.unlink()
        failed = {i: r for i, r in results.items() if isinstance(r, BaseException)}
        if failed:
            i, exc = min(failed.items())
            if isinstance(exc, (DataError, NotFound)):
                return RunStatus.FAILED, {"message": f"node {i}: the run's inputs could not be prepared: {exc}",
                                          "code": "DataError", "where": "the inputs", "node": i}, None
            kind = "could not be built" if isinstance(exc, EnvironmentBuildError) else "could not be prepared"
            tail = log_path.read_text(encoding="utf-8").splitlines()[-20:] if log_path.exists() else []
            reason = " ".join(str(exc).split())[:2000]
            return RunStatus.FAILED, {"message": f"node {i}: environment {plan.name!r} {kind}: {reason}",
                                      "code": "EnvironmentBuildFailed" if isinstance(exc, EnvironmentBuildError)
                                      else "PrepareFailed", "where": "the environment build", "node": i,
                                      "last_lines": tail}, None
        self._pythons = [results[i]["python"] for i in range(len(self._agents))]
        self._data_envs = [results[i]["data_env"] for i in range(len(self._agents))]
        for i in range(len(self._agents)):
            for note in results[i]["notes"]:
                self.say(f"node {i}: {note}")
        return None

    # -- Running: pull output and exits from the agents -----------------------------------------------------------
    def _housekeeping(self) -> None:
        if time.monotonic() - self._last_pump >= _POLL:
            self._pump()

    def _pump(self, final: bool = False) -> None:
        import ray

        with self._pump_lock:
            self._last_pump = time.monotonic()
            live = [(i, a) for i, a in enumerate(self._agents) if not self._node_lost(i)]
            if final:
                ray.wait([a.drain.remote(1.0) for _, a in live], num_returns=len(live), timeout=3)
            refs = {i: a.poll.remote() for i, a in live}
            timeout = float(self.settings.get("agent_timeout_seconds", 30))
            for i, ref in refs.items():
                try:
                    answer = ray.get(ref, timeout=5)
                except ray.exceptions.GetTimeoutError:
                    if time.monotonic() - self._last_answer.get(i, time.monotonic()) > timeout:
                        self._lose_node(i, f"its agent did not answer for {timeout:g} s")
                    continue
                except ray.exceptions.RayActorError as exc:
                    self._lose_node(i, _actor_death(exc))
                    continue
                self._last_answer[i] = time.monotonic()
                for key, data in answer["output"].items():
                    log = self._rank_logs.get(key)
                    if log is not None:
                        log.write(data)
                if answer["markers"]:
                    fifo_dir = self.run_dir / "rank-fifos"
                    fifo_dir.mkdir(exist_ok=True)
                    for name, text in answer["markers"].items():
                        (fifo_dir / name).write_text(text)
                for rank, code in answer["exits"].items():
                    if code is not None:
                        proc = next(p for p in self._procs if p.rank == int(rank))
                        proc.finish(code)

    def _rank_log(self, rank: int) -> RotatingLog | None:
        return self._rank_logs.get(str(rank))  # _failure drained the agents already

    def _node_lost(self, i: int) -> bool:
        return any(p.lost for p in self._procs if p.node == i)

    def _lose_node(self, i: int, why: str) -> None:
        info = self._infos[i] if i < len(self._infos) else {"ip": "?", "node_id": "?"}
        ranks = [p.rank for p in self._procs if p.node == i]
        message = (f"node {i} ({info['ip']}, Ray node {info['node_id'][:12]}) was lost: {why}; "
                   + (f"rank(s) {', '.join(map(str, ranks))} ran there" if ranks else "no rank ran there"))
        self.say(message)
        for proc in self._procs:
            if proc.node == i:
                proc.lost = message
                proc.finish(-9)

    def _failure(self, proc) -> dict[str, Any]:
        if getattr(proc, "lost", None):
            return {"message": proc.lost, "code": "NodeLost", "rank": proc.rank, "node": proc.node,
                    "last_lines": proc.log.last_lines(20)}
        error = super()._failure(proc)
        error["node"] = proc.node
        return error

    def _kill_all(self) -> None:
        import ray

        grace = self.settings["kill_grace_seconds"]
        live = [a for i, a in enumerate(self._agents) if not self._node_lost(i)]
        if live:
            ray.wait([a.stop.remote(None, grace) for a in live], num_returns=len(live), timeout=grace + 15)
            if self._procs:
                self._pump(final=True)

    def _stop_processes(self, procs: list) -> None:
        import ray

        by_node: dict[int, list[int]] = {}
        for proc in procs:
            by_node.setdefault(proc.node, []).append(proc.rank)
        grace = self.settings["kill_grace_seconds"]
        refs = [self._agents[n].stop.remote(ranks, grace) for n, ranks in by_node.items() if not self._node_lost(n)]
        ray.wait(refs, num_returns=len(refs), timeout=grace + 15)

    # -- Finalizing -----------------------------------------------------------------------------------------------
    def _upload_outputs(self) -> None:
        import ray

        for i in reversed(range(len(self._agents))):  # node 0 last: its files win where nodes wrote the same name
            if self._node_lost(i):
                continue
            try:
                count = ray.get(self._agents[i].upload.remote(), timeout=600)
            except ray.exceptions.RayError as exc:
                raise ComputeError(f"node {i} could not upload its outputs: {exc}") from exc
            if count:
                self.say(f"node {i}: uploaded {count} file(s) of outputs/ and logs/")

    def _reset_for_retry(self) -> None:
        """Keep what the nodes saved (``outputs/``, uploaded; the next attempt's nodes get it back), then release
        the agents and the placement group: the next attempt starts on whatever nodes the cluster gives."""
        try:
            self._upload_outputs()
        except ComputeError as exc:
            self.say(f"outputs of the failed attempt not kept: {exc}")
        self._release()
        for log in self._rank_logs.values():
            log.close()
        self._rank_logs, self._procs, self._infos, self._last_answer = {}, [], [], {}

    def _release(self) -> None:
        import ray

        for agent in self._agents:
            try:
                ray.get(agent.shutdown.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - a lost node's agent is gone already
                pass
            ray.kill(agent)
        self._agents = []
        if self._pg is not None:
            from ray.util.placement_group import remove_placement_group

            try:
                remove_placement_group(self._pg)
            except Exception:  # noqa: BLE001
                pass
            self._pg = None

    def _cleanup(self) -> None:
        self._release()
        super()._cleanup()


def _actor_death(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return "its runyard node agent died (" + (text[:300] or type(exc).__name__) + ")"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m runyard.compute.ray_driver REQUEST", file=sys.stderr)
        return 2
    request = decode_request(argv[1])
    run_dir = Path(tempfile.gettempdir()) / "runyard-ray-driver" / request.run_id
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    workspace = dict(request.workspace)
    if not os.path.isdir(workspace["path"]):
        workspace["path"] = str(run_dir / "workspace")
    request = dataclasses.replace(request, workspace=workspace)
    write_request(run_dir, request)
    try:
        driver = RayDriver(run_dir, request)
    except Exception as exc:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        fail_unsupervised(run_dir, exc)
        return 1
    driver.say(f"driver pid {os.getpid()} on {socket.gethostname()} (Ray job runyard-{request.run_id})")
    return driver.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
