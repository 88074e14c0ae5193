"""The ``ray`` compute target: runs on a Ray cluster, one node agent per node of the job (DESIGN.md §3.5).

A run becomes a Ray job (submitted over the dashboard's Jobs REST API, so the submitting process needs neither
Ray nor a connection to the cluster) whose driver, ``runyard.compute.ray_driver``, is the run's supervisor: it
reserves a placement group with one bundle per node, starts a node agent in each bundle, and drives the run
through the same life cycle as a local run. It survives the submitting process.

Two ways to get a target (Azure's ``AmlCompute`` / attached compute):

    cfg = RayCompute.attach_configuration(address="http://head:8265")       # an existing cluster
    cfg = RayCompute.provisioning_configuration(max_nodes=4, min_nodes=2)   # nodes started and owned on this machine
    target = ComputeTarget.create(ws, "raycluster", cfg); target.wait_for_completion(show_output=True)
"""
from __future__ import annotations

import base64
import dataclasses
import socket
import sys
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runyard.compute import ray_local
from runyard.compute.api import (
    KILL_GRACE,
    LOG_MAX_MB,
    REQUIRE_GPU,
    ComputeStatus,
    ComputeTarget,
    RunDescription,
    RunRef,
    TargetOption,
)
from runyard.compute.ray_config import RayCompute, RayComputeConfiguration
from runyard.compute.ray_jobs import RayJobs, dashboard_url, find_dashboard
from runyard.config.job import JobSpec
from runyard.errors import ComputeError, InvalidStatusTransition, NotFound
from runyard.launchers import launcher_for
from runyard.runtime.launch import run_environment
from runyard.runtime.logfiles import BUILD_LOG_NAME, decode_chunks, user_log_name
from runyard.runtime.request import RayRequest, request_from_dict
from runyard.status import RunStatus
from runyard.store.workspace_context import WorkspaceContext

if TYPE_CHECKING:
    from runyard.environments import EnvironmentPlan
    from runyard.store.snapshots import Snapshot

JOB_PREFIX = "runyard-"  # a run's Ray job is submitted as runyard-<run id>
_TERMINAL_JOB = ("SUCCEEDED", "FAILED", "STOPPED")


# -- feasibility (pure: unit-tested) ------------------------------------------------------------------------
def bundle_for(job: JobSpec) -> dict[str, float]:
    """What each node of the job holds: a CPU per process, and a GPU per process with use_gpu."""
    bundle = {"CPU": float(job.process_count_per_node)}
    if job.use_gpu:
        bundle["GPU"] = float(job.process_count_per_node)
    return bundle


def fits(bundle: dict[str, float], node: dict[str, Any]) -> bool:
    total = node.get("resources_total") or {}
    return all(total.get(k, 0.0) >= v for k, v in bundle.items())


def never_fits(job: JobSpec, nodes: list[dict[str, Any]], strategy: str, max_nodes: int | None) -> str | None:
    """Why the cluster can never run the job (None: it can, now or once resources free up / nodes join)."""
    bundle = bundle_for(job)
    what = ", ".join(f"{v:g} {k}" for k, v in bundle.items())
    if not any(fits(bundle, n) for n in nodes):
        best = max((n.get("resources_total") or {} for n in nodes), key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)),
                   default={})
        return (f"each node of the job needs {what} (process_count_per_node={job.process_count_per_node}"
                + (", use_gpu" if job.use_gpu else "") + f") and no node of the cluster has that much "
                f"(the largest has {best.get('CPU', 0):g} CPU, {best.get('GPU', 0):g} GPU)")
    if strategy == "STRICT_PACK" and job.node_count > 1:
        total = {k: v * job.node_count for k, v in bundle.items()}
        if not any(fits(total, n) for n in nodes):
            return f"placement_strategy=STRICT_PACK puts all {job.node_count} nodes of the job on one Ray node, " \
                   "and none is that large"
    if strategy == "STRICT_SPREAD" and max_nodes is not None and job.node_count > max_nodes:
        return f"node_count={job.node_count} needs {job.node_count} Ray nodes and the target has max_nodes={max_nodes}"
    return None


def local_addresses() -> set[str]:
    """Addresses that mean this machine."""
    found = {"127.0.0.1", "::1", "localhost", socket.gethostname()}
    try:
        import psutil

        for addrs in psutil.net_if_addrs().values():
            found.update(a.address.split("%")[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except Exception:  # noqa: BLE001 - psutil missing or the interfaces unreadable: loopback only
        pass
    return found


def machine_local_store_problem(tracking_uri: str, artifact_uri: str, nodes: list[dict[str, Any]]) -> str | None:
    """A workspace whose stores only this machine can reach (SQLite, a local folder) works on a Ray cluster only
    when every node is this machine."""
    local_db = tracking_uri.startswith("sqlite")
    local_files = "://" not in artifact_uri or artifact_uri.startswith("file://")
    if not (local_db or local_files):
        return None
    here = local_addresses()
    remote = sorted({n.get("node_ip", "?") for n in nodes if n.get("node_ip") not in here and
                     not str(n.get("node_ip", "")).startswith("127.")})
    if not remote:
        return None
    what = " and ".join(x for x, on in (("its metadata store is SQLite", local_db),
                                         ("its artifact store is a local folder", local_files)) if on)
    return (f"this workspace cannot be used on Ray cluster nodes {', '.join(remote)}: {what}, which only this machine "
            "can reach — use a PostgreSQL tracking_uri and a shared or object-store artifact_uri (e.g. s3://) in the "
            "workspace config, so that every node reaches the run's history")


# -- the target ---------------------------------------------------------------------------------------------------
class RayTarget(ComputeTarget):
    """A Ray cluster (registered with ``ComputeTarget.create``)."""

    type = "ray"
    options = (
        LOG_MAX_MB,
        KILL_GRACE,
        REQUIRE_GPU,
        TargetOption("log_sync_seconds", float, 1.0,
                     "seconds between uploads of a running run's logs (what `runyard logs -f` shows)"),
        TargetOption("agent_timeout_seconds", float, 30.0,
                     "seconds a node agent may not answer before its node counts as lost"),
    )

    def __init__(self, workspace: "WorkspaceContext", name: str, config: RayComputeConfiguration | None = None) -> None:
        super().__init__(workspace, name)
        if config is None:
            config = RayComputeConfiguration.from_dict(workspace.metadata.get_compute_target(name).config)
        self.config = config

    # -- the cluster --------------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        try:
            return self.workspace.metadata.get_compute_target(self.name).state
        except NotFound:
            return {}

    @property
    def dashboard(self) -> str:
        if self.config.mode == "attach":
            address = self.config.address or ""
            if self.config.dashboard_address or "://" in address:
                return dashboard_url(address, self.config.dashboard_address)
            # A GCS address (head:6379): the dashboard is at head:8265 unless the cluster says otherwise.
            known = self.state.get("dashboard")
            if known:
                return known
            url = find_dashboard(address)
            try:
                self.workspace.metadata.set_compute_target_state(self.name, {**self.state, "dashboard": url})
            except NotFound:
                pass  # not stored yet (a configuration being checked): found again next time
            return url
        url = self.state.get("dashboard")
        if not url:
            raise ComputeError(f"compute target {self.name!r} has no running cluster — "
                               f"`runyard compute create` (or target.start()) starts it")
        return url

    def jobs(self) -> RayJobs:
        return RayJobs(self.dashboard)

    def provision(self, show_output: bool = False) -> None:
        """Start the nodes of a provisioned target on this machine (its head first)."""
        if self.config.mode != "provision":
            return
        state = ray_local.start_cluster(self.workspace, self.name, self.config, self.state, show_output)
        self.workspace.metadata.set_compute_target_state(self.name, state)

    def scale_to(self, nodes: int) -> None:
        state = ray_local.add_nodes(self.workspace, self.name, self.config, self.state, nodes)
        self.workspace.metadata.set_compute_target_state(self.name, state)

    def stop_cluster(self) -> None:
        if self.config.mode == "provision":
            ray_local.stop_cluster(self.state)
            self.workspace.metadata.set_compute_target_state(self.name, {})

    def get_status(self) -> ComputeStatus:
        """The cluster's state and nodes (``.serialize()`` gives a dict, as in Azure)."""
        try:
            nodes = self.jobs().nodes()
        except ComputeError as exc:
            return ComputeStatus("Unreachable" if self.config.mode == "attach" or self.state else "Stopped",
                                 0, 0.0, 0.0, [], str(exc))
        cpus = sum((n.get("resources_total") or {}).get("CPU", 0.0) for n in nodes)
        gpus = sum((n.get("resources_total") or {}).get("GPU", 0.0) for n in nodes)
        return ComputeStatus("Succeeded", len(nodes), cpus, gpus,
                             [{"node_id": n["node_id"], "ip": n.get("node_ip"), "head": n.get("is_head_node", False),
                               "resources": n.get("resources_total")} for n in nodes], None)

    # -- dryrun / admit / schedule ----------------------------------------------------------------------
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot | None", environment: "EnvironmentPlan",
                kind: str, extra: dict[str, Any]) -> RayRequest:
        if kind != "script":
            raise self._other_kind(kind)
        if self.config.azure and job.node_count > self.config.max_nodes:  # AmlCompute's bound, whatever the placement
            raise ComputeError(f"compute target {self.name!r} has max_nodes={self.config.max_nodes}; the job asks for "
                               f"node_count={job.node_count}")
        return RayRequest(
            target=self.name, run=run, workspace=self.workspace.ref(), job=job,
            snapshot_id=snapshot.id if snapshot is not None else None, environment=environment,
            settings={**self.settings, "queue_timeout_seconds": self.config.queue_timeout_seconds},
            run_env=run_environment(self.workspace, job, run, None), submitted_ns=time.time_ns(),
            launcher=launcher_for(job).name, bundle=bundle_for(job),
            strategy=self.config.placement_strategy if job.node_count > 1 else "PACK",
            dashboard=self.dashboard, driver_python=self.config.python or self.state.get("python") or "", nodes_now=0,
        )

    def admit(self, request: RayRequest) -> RayRequest:  # type: ignore[override]
        """Ask the cluster: a job no node can ever hold, or stores its nodes cannot reach, is refused now; a use_gpu
        job on a cluster without any GPU runs on its CPUs (``on_cpu_instead``)."""
        nodes = self.jobs().nodes()
        gpus = any((n.get("resources_total") or {}).get("GPU", 0) > 0 for n in nodes)
        note = self.on_cpu_instead(request.job, gpus, f"Ray cluster {self.name!r}")
        if note:
            job = dataclasses.replace(request.job, use_gpu=False)
            request = dataclasses.replace(request, job=job, bundle=bundle_for(job), environment=self.plan_environment(job),
                                          notes=(*request.notes, note))
        return placed(request, nodes, self.name, self.config.max_nodes if self.config.mode == "provision" else None)

    def schedule(self, request: RayRequest) -> str:  # type: ignore[override]
        if (self.config.mode == "provision" and request.strategy == "STRICT_SPREAD"
                and request.job.node_count > request.nodes_now):
            self.scale_to(request.job.node_count)  # a provisioned cluster grows to what the job needs, up to max_nodes
        self.jobs().submit(JOB_PREFIX + request.run_id, f"{request.driver_python} -m runyard.compute.ray_driver "
                           f"{encode_request(request)}", {"runyard_run_id": request.run_id, "runyard_target": self.name})
        return request.run_id

    # -- observe / cancel -----------------------------------------------------------------------------------
    def describe(self, run_id: str) -> RunDescription | None:
        try:
            info = self.workspace.metadata.get_run(run_id)
        except NotFound:
            return None
        if info.compute_target != self.name:
            return None
        details: dict[str, Any] = {"ray_job": JOB_PREFIX + run_id, "dashboard": self.config.address or self.state.get("dashboard")}
        try:
            job = self.jobs().job(JOB_PREFIX + run_id)
        except ComputeError as exc:
            details["ray_error"] = str(exc)
        else:
            if job:
                details.update(ray_job_status=job.get("status"), ray_message=job.get("message"))
        return RunDescription(run_id, self.name, self._check_driver(run_id).value, details)

    def _check_driver(self, run_id: str) -> RunStatus:
        """The run's status, failing a run whose Ray job ended without ending it (a driver that could not start
        on the cluster: runyard missing from its Python, a cluster restarted…)."""
        store = self.workspace.metadata
        status = store.get_run(run_id).status
        if status.is_terminal():
            return status
        try:
            job = self.jobs().job(JOB_PREFIX + run_id)
        except ComputeError:
            return status
        if job is None or job.get("status") not in _TERMINAL_JOB:
            return status
        time.sleep(0.5)  # the driver records the end status just before its job ends
        status = store.get_run(run_id).status
        if status.is_terminal():
            return status
        logs = self.jobs().job_logs(JOB_PREFIX + run_id).splitlines()[-20:]
        final = RunStatus.CANCELED if status == RunStatus.CANCEL_REQUESTED else RunStatus.FAILED
        try:
            store.set_status(run_id, final, error=None if final == RunStatus.CANCELED else {
                "message": f"the run's Ray job {JOB_PREFIX}{run_id} ended {job.get('status')} without finishing the "
                           f"run: {job.get('message') or 'no message'}", "code": "DriverLost", "last_lines": logs})
        except InvalidStatusTransition:
            pass
        return store.get_run(run_id).status

    def cancel(self, run_id: str, wait: float = 10.0) -> None:
        store = self.workspace.metadata
        if store.get_run(run_id).status.is_terminal():
            return
        try:
            store.set_status(run_id, RunStatus.CANCEL_REQUESTED)  # the driver polls for it and stops every node
        except InvalidStatusTransition:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self._check_driver(run_id).is_terminal():
                return
            time.sleep(0.1)
        # The driver did not finish in time (or never started): stop its Ray job, which ends its actors and
        # placement group with it.
        try:
            self.jobs().stop(JOB_PREFIX + run_id)
        except ComputeError:
            pass
        end = time.monotonic() + 10
        while time.monotonic() < end and not self._check_driver(run_id).is_terminal():
            time.sleep(0.2)
        if not store.get_run(run_id).status.is_terminal():
            try:
                store.set_status(run_id, RunStatus.CANCELED, error={"message": "canceled; the Ray job was stopped",
                                                                    "code": "Canceled"})
            except InvalidStatusTransition:
                pass

    # -- logs: the driver uploads them every log_sync_seconds; followed from the artifact store ---------------
    def log_iter(self, run_id: str, rank: int = 0, follow: bool = False) -> Iterator[str]:
        if not follow:
            yield from super().log_iter(run_id, rank)
            return
        yield from self._follow(run_id, user_log_name(rank), lambda s: s.is_terminal())

    def build_log_iter(self, run_id: str, follow: bool = False) -> Iterator[str]:
        if not follow:
            yield from super().build_log_iter(run_id)
            return
        preparing = (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING)
        yield from self._follow(run_id, BUILD_LOG_NAME, lambda s: s not in preparing)

    def _follow(self, run_id: str, name: str, done, poll: float = 0.3) -> Iterator[str]:
        def chunks() -> Iterator[bytes]:
            offset, last_check = 0, 0.0
            while True:
                now = time.monotonic()
                status = self._check_driver(run_id) if now - last_check > 3 else \
                    self.workspace.metadata.get_run(run_id).status
                if now - last_check > 3:
                    last_check = now
                finished = done(status)
                data = self._read_from(run_id, name, offset)
                if data:
                    offset += len(data)
                    yield data
                elif finished:
                    return
                else:
                    time.sleep(poll)

        yield from decode_chunks(chunks())

    def _read_from(self, run_id: str, name: str, offset: int) -> bytes:
        try:
            with self.workspace.artifacts.open(run_id, name) as f:
                f.seek(offset)
                return f.read(1 << 20)
        except (FileNotFoundError, NotFound, OSError):
            return b""


def placed(request: RayRequest, nodes: list[dict[str, Any]], target: str, max_nodes: int | None) -> RayRequest:
    """The request completed with what the cluster's ``nodes`` are now (pure: unit-tested on a node list), or a
    ComputeError when the job can never run there."""
    ws = request.workspace
    problem = machine_local_store_problem(ws["tracking_uri"], ws["artifact_uri"], nodes)
    if problem:
        raise ComputeError(problem)
    never = never_fits(request.job, nodes, request.strategy, max_nodes)
    if never:
        raise ComputeError(f"compute target {target!r} can never run this job: {never}")
    all_local = all(n.get("node_ip") in local_addresses() or str(n.get("node_ip", "")).startswith("127.")
                    for n in nodes)
    python = request.driver_python or (sys.executable if all_local else "python3")
    return dataclasses.replace(request, driver_python=python, nodes_now=max(len(nodes), 1))


def encode_request(request: RayRequest) -> str:
    """The request as one command-line word for the driver's Ray job."""
    return base64.b64encode(zlib.compress(request.to_json().encode())).decode()


def decode_request(blob: str) -> RayRequest:
    """The request a driver was started with (the inverse of ``encode_request``)."""
    import json

    request = request_from_dict(json.loads(zlib.decompress(base64.b64decode(blob))))
    assert isinstance(request, RayRequest)
    return request



__all__ = ["RayCompute", "RayComputeConfiguration", "RayJobs", "RayTarget", "bundle_for", "dashboard_url",
           "decode_request", "encode_request", "machine_local_store_problem", "never_fits", "placed"]
