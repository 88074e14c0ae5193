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
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runyard.compute.api import (
    BUILD_LOG_NAME,
    KILL_GRACE,
    LOG_MAX_MB,
    ComputeTarget,
    RunDescription,
    RunRef,
    SubmitRequest,
    TargetOption,
    run_environment,
    user_log_name,
)
from runyard.config.job import JobSpec
from runyard.errors import ComputeError, ConfigError, InvalidStatusTransition, NotFound
from runyard.launchers import launcher_for
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.compute.registry import ComputeStatus
    from runyard.submission.environments import EnvironmentPlan
    from runyard.submission.snapshot import Snapshot
    from runyard.workspace import Workspace

STRATEGIES = ("STRICT_SPREAD", "SPREAD", "PACK", "STRICT_PACK")
JOB_PREFIX = "runyard-"  # a run's Ray job is submitted as runyard-<run id>
_TERMINAL_JOB = ("SUCCEEDED", "FAILED", "STOPPED")


# -- configurations (Azure's provisioning_configuration / attach_configuration) -------------------------------
@dataclass
class RayComputeConfiguration:
    """How a Ray target reaches its cluster. ``provision``: runyard starts (and owns) the nodes on this machine."""

    mode: str  # "attach" or "provision"
    address: str | None = None  # attach: http://host:8265 (dashboard), ray://host:10001 or host:6379
    dashboard_address: str | None = None  # attach: the dashboard when it is not at the address's host:8265
    max_nodes: int = 4
    min_nodes: int = 0
    cpus_per_node: int | None = None  # provision: CPUs each local node offers (default: this machine's count)
    gpus_per_node: int = 0
    placement_strategy: str = "STRICT_SPREAD"
    python: str | None = None  # the interpreter that runs the driver on the head node (runyard installed there)
    queue_timeout_seconds: float = 3600.0
    vm_size: str | None = None  # recorded only (Azure scripts pass it)
    azure: dict[str, Any] | None = None  # made from AmlCompute.provisioning_configuration: its settings (max_nodes holds)

    def validate(self) -> None:
        if self.mode not in ("attach", "provision"):
            raise ConfigError(f"mode must be 'attach' or 'provision', got {self.mode!r}")
        if self.mode == "attach" and not self.address:
            raise ConfigError("RayCompute.attach_configuration needs the cluster's address, e.g. http://head:8265")
        if self.placement_strategy not in STRATEGIES:
            raise ConfigError(f"placement_strategy must be one of {', '.join(STRATEGIES)}, "
                              f"got {self.placement_strategy!r}")
        for name in ("max_nodes", "gpus_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "max_nodes" else 0):
                raise ConfigError(f"{name} must be a whole number >= {1 if name == 'max_nodes' else 0}, got {value!r}")
        if isinstance(self.min_nodes, bool) or not isinstance(self.min_nodes, int) or not 0 <= self.min_nodes <= self.max_nodes:
            raise ConfigError(f"min_nodes must be between 0 and max_nodes={self.max_nodes}, got {self.min_nodes!r}")
        if self.cpus_per_node is not None and (not isinstance(self.cpus_per_node, int) or self.cpus_per_node < 1):
            raise ConfigError(f"cpus_per_node must be a whole number >= 1, got {self.cpus_per_node!r}")
        if not (isinstance(self.queue_timeout_seconds, (int, float)) and self.queue_timeout_seconds > 0):
            raise ConfigError(f"queue_timeout_seconds must be a positive number, got {self.queue_timeout_seconds!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RayComputeConfiguration":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown Ray compute setting(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class RayCompute:
    """Configurations of Ray compute targets (the counterpart of Azure's ``AmlCompute``)."""

    @staticmethod
    def attach_configuration(address: str, dashboard_address: str | None = None,
                             placement_strategy: str = "STRICT_SPREAD", python: str | None = None,
                             queue_timeout_seconds: float = 3600.0) -> RayComputeConfiguration:
        """An existing cluster. ``placement_strategy="SPREAD"`` lets a job's nodes share a host (one-host test
        clusters); the default, ``STRICT_SPREAD``, puts each node of a job on a different Ray node."""
        cfg = RayComputeConfiguration("attach", address=address, dashboard_address=dashboard_address,
                                      placement_strategy=placement_strategy, python=python,
                                      queue_timeout_seconds=queue_timeout_seconds)
        cfg.validate()
        return cfg

    @staticmethod
    def provisioning_configuration(max_nodes: int = 4, min_nodes: int = 0, cpus_per_node: int | None = None,
                                   gpus_per_node: int = 0, placement_strategy: str = "STRICT_SPREAD",
                                   vm_size: str | None = None, queue_timeout_seconds: float = 3600.0,
                                   **_azure_only: Any) -> RayComputeConfiguration:
        """A cluster runyard starts on this machine: a head node and ``max(min_nodes, 1) - 1`` more nodes, up to
        ``max_nodes`` as jobs ask for them. Azure-only settings (``vm_priority``, ``idle_seconds_before_scaledown``…)
        are accepted and ignored."""
        cfg = RayComputeConfiguration("provision", max_nodes=max_nodes, min_nodes=min_nodes,
                                      cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
                                      placement_strategy=placement_strategy, vm_size=vm_size,
                                      queue_timeout_seconds=queue_timeout_seconds)
        cfg.validate()
        return cfg


# -- the dashboard's REST API ---------------------------------------------------------------------------------
def dashboard_url(address: str, dashboard_address: str | None = None) -> str:
    """``http://host:8265`` from an attach address (http(s)://…, ray://host:10001, host:6379)."""
    if dashboard_address:
        return dashboard_address if "://" in dashboard_address else f"http://{dashboard_address}"
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    host = urllib.parse.urlsplit(address if "://" in address else f"//{address}").hostname or "127.0.0.1"
    return f"http://{host}:8265"


class RayJobs:
    """The few calls of Ray's Jobs and State REST APIs that runyard needs (no Ray import in the client)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()[-500:]
            if exc.code == 404:
                raise NotFound(f"Ray cluster {self.url}: {path} not found ({detail})") from None
            raise ComputeError(f"Ray cluster {self.url} refused {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ComputeError(f"cannot reach the Ray cluster's dashboard at {self.url} ({reason}) — is the cluster "
                               "up, and was it started with the dashboard (ray[default])?") from None
        return json.loads(text) if text.strip() else None

    def version(self) -> dict[str, Any]:
        return self._call("GET", "/api/version")

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes: node_id, node_ip, is_head_node, resources_total."""
        found = self._call("GET", "/api/v0/nodes?limit=10000&detail=false")
        rows = (((found or {}).get("data") or {}).get("result") or {}).get("result") or []
        return [n for n in rows if n.get("state") == "ALIVE"]

    def submit(self, submission_id: str, entrypoint: str, metadata: dict[str, str]) -> str:
        out = self._call("POST", "/api/jobs/", {"entrypoint": entrypoint, "submission_id": submission_id,
                                                "metadata": metadata, "entrypoint_num_cpus": 0,
                                                "runtime_env": {}})
        return out.get("submission_id") or out.get("job_id") or submission_id

    def job(self, submission_id: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/api/jobs/{submission_id}")
        except NotFound:
            return None

    def job_logs(self, submission_id: str) -> str:
        try:
            return (self._call("GET", f"/api/jobs/{submission_id}/logs") or {}).get("logs") or ""
        except (NotFound, ComputeError):
            return ""

    def stop(self, submission_id: str) -> bool:
        try:
            return bool((self._call("POST", f"/api/jobs/{submission_id}/stop") or {}).get("stopped"))
        except NotFound:
            return False


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
        TargetOption("log_sync_seconds", float, 1.0,
                     "seconds between uploads of a running run's logs (what `runyard logs -f` shows)"),
        TargetOption("agent_timeout_seconds", float, 30.0,
                     "seconds a node agent may not answer before its node counts as lost"),
    )

    def __init__(self, workspace: "Workspace", name: str, config: RayComputeConfiguration | None = None) -> None:
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
            return dashboard_url(self.config.address or "", self.config.dashboard_address)
        url = self.state.get("dashboard")
        if not url:
            raise ComputeError(f"compute target {self.name!r} has no running cluster — "
                               f"`runyard compute create` (or target.start()) starts it")
        return url

    def jobs(self) -> RayJobs:
        return RayJobs(self.dashboard)

    def provision(self, show_output: bool = False) -> None:
        """Start the nodes of a provisioned target on this machine (its head first)."""
        from runyard.compute import ray_local

        if self.config.mode != "provision":
            return
        state = ray_local.start_cluster(self.workspace, self.name, self.config, self.state, show_output)
        self.workspace.metadata.set_compute_target_state(self.name, state)

    def scale_to(self, nodes: int) -> None:
        from runyard.compute import ray_local

        state = ray_local.add_nodes(self.workspace, self.name, self.config, self.state, nodes)
        self.workspace.metadata.set_compute_target_state(self.name, state)

    def stop_cluster(self) -> None:
        from runyard.compute import ray_local

        if self.config.mode == "provision":
            ray_local.stop_cluster(self.state)
            self.workspace.metadata.set_compute_target_state(self.name, {})

    def get_status(self) -> "ComputeStatus":
        """The cluster's state and nodes (``.serialize()`` gives a dict, as in Azure)."""
        from runyard.compute.registry import ComputeStatus

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

    # -- dryrun / schedule --------------------------------------------------------------------------------
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot", environment: "EnvironmentPlan") -> SubmitRequest:
        launcher = launcher_for(job)
        strategy = self.config.placement_strategy if job.node_count > 1 else "PACK"
        jobs = self.jobs()
        nodes = jobs.nodes()
        problem = machine_local_store_problem(self.workspace.tracking_uri, self.workspace.artifact_uri, nodes)
        if problem:
            raise ComputeError(problem)
        if self.config.azure and job.node_count > self.config.max_nodes:  # AmlCompute's bound, whatever the placement
            raise ComputeError(f"compute target {self.name!r} has max_nodes={self.config.max_nodes}; the job asks for "
                               f"node_count={job.node_count}")
        max_nodes = self.config.max_nodes if self.config.mode == "provision" else None
        never = never_fits(job, nodes, strategy, max_nodes)
        if never:
            raise ComputeError(f"compute target {self.name!r} can never run this job: {never}")
        all_local = all(n.get("node_ip") in local_addresses() or str(n.get("node_ip", "")).startswith("127.")
                        for n in nodes)
        python = self.config.python or self.state.get("python") or (sys.executable if all_local else "python3")
        return SubmitRequest(self.name, run.run_id, {
            "workspace": {"path": str(self.workspace.path), "tracking_uri": self.workspace.tracking_uri,
                          "artifact_uri": self.workspace.artifact_uri},
            "job": job.to_definition(),
            "snapshot_id": snapshot.id,
            "submitted_ns": time.time_ns(),
            "settings": {**self.settings, "queue_timeout_seconds": self.config.queue_timeout_seconds},
            "environment": environment.to_dict(),
            "launcher": launcher.name,
            "run_env": run_environment(self.workspace, job, run, None),
            "bundle": bundle_for(job),
            "strategy": strategy,
            "dashboard": self.dashboard,
            "driver_python": python,
            "nodes_now": len(nodes),
        })

    def schedule(self, request: SubmitRequest) -> str:
        payload = request.payload
        job = JobSpec.from_definition(payload["job"])
        if (self.config.mode == "provision" and payload["strategy"] == "STRICT_SPREAD"
                and job.node_count > payload["nodes_now"]):
            self.scale_to(job.node_count)  # a provisioned cluster grows to what the job needs, up to max_nodes
        blob = base64.b64encode(zlib.compress(json.dumps({"run_id": request.run_id, **payload}).encode())).decode()
        entrypoint = f"{payload['driver_python']} -m runyard.compute.ray_driver {blob}"
        self.jobs().submit(JOB_PREFIX + request.run_id, entrypoint, {"runyard_run_id": request.run_id,
                                                                    "runyard_target": self.name})
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
        from runyard.submission.logfiles import decode_chunks

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


def driver_request(blob: str) -> dict[str, Any]:
    """The request a driver was started with (the inverse of ``schedule``'s encoding)."""
    return json.loads(zlib.decompress(base64.b64decode(blob)))



__all__ = ["RayCompute", "RayComputeConfiguration", "RayJobs", "RayTarget", "bundle_for", "dashboard_url",
           "machine_local_store_problem", "never_fits"]
