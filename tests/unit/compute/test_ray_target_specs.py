"""The Ray target's pure parts (no cluster): configurations, feasibility, the workspace check, the registry."""
from __future__ import annotations

import pytest

from runyard import ComputeError, ConfigError, Workspace
from runyard.compute import ComputeTarget, ComputeTargetNotFound, RayCompute, get_target
from runyard.compute.ray_target import (
    RayComputeConfiguration,
    bundle_for,
    dashboard_url,
    decode_request,
    encode_request,
    machine_local_store_problem,
    never_fits,
    placed,
)
from runyard.config.job import JobSpec
from runyard.runtime.request import RayRequest, RunRef


def job(nodes=1, per_node=1, use_gpu=False):
    return JobSpec(source_directory="/src", entry_script="t.py", node_count=nodes, process_count_per_node=per_node,
                   distributed={"backend": "pytorch"} if nodes * per_node > 1 else None, use_gpu=use_gpu)


def node(ip="127.0.0.1", cpu=2.0, gpu=0.0, head=False):
    return {"node_id": f"{ip}-{cpu}-{gpu}", "node_ip": ip, "is_head_node": head,
            "resources_total": {"CPU": cpu, **({"GPU": gpu} if gpu else {})}}


def test_configurations_validate_and_round_trip():
    cfg = RayCompute.attach_configuration("ray://head:10001", placement_strategy="SPREAD")
    assert RayComputeConfiguration.from_dict(cfg.to_dict()) == cfg
    prov = RayCompute.provisioning_configuration(max_nodes=3, min_nodes=2, vm_size="STANDARD_NC6",
                                                 vm_priority="lowpriority", idle_seconds_before_scaledown=120)
    assert (prov.mode, prov.max_nodes, prov.min_nodes, prov.vm_size) == ("provision", 3, 2, "STANDARD_NC6")
    with pytest.raises(ConfigError, match="placement_strategy must be one of"):
        RayCompute.attach_configuration("http://h:8265", placement_strategy="ANYWHERE")
    with pytest.raises(ConfigError, match="min_nodes must be between 0 and max_nodes=2"):
        RayCompute.provisioning_configuration(max_nodes=2, min_nodes=3)
    with pytest.raises(ConfigError, match="needs the cluster's address"):
        RayCompute.attach_configuration("")
    with pytest.raises(ConfigError, match="unknown Ray compute setting"):
        RayComputeConfiguration.from_dict({"mode": "attach", "address": "h", "colour": "red"})


def test_dashboard_url_from_any_address_form():
    assert dashboard_url("http://10.0.0.5:8265/") == "http://10.0.0.5:8265"
    assert dashboard_url("ray://head:10001") == "http://head:8265"
    assert dashboard_url("head:6379") == "http://head:8265"
    assert dashboard_url("ray://head:10001", "head:9999") == "http://head:9999"


def test_a_bundle_per_node_and_what_can_never_fit():
    assert bundle_for(job(2, 2)) == {"CPU": 2.0}
    assert bundle_for(job(2, 2, use_gpu=True)) == {"CPU": 2.0, "GPU": 2.0}
    two = [node(cpu=2), node("127.0.0.2", cpu=2)]
    assert never_fits(job(2, 2), two, "STRICT_SPREAD", None) is None
    assert never_fits(job(3, 1), two, "STRICT_SPREAD", None) is None  # may wait for a node to join
    assert "max_nodes=2" in never_fits(job(3, 1), two, "STRICT_SPREAD", 2)
    why = never_fits(job(1, 4), two, "PACK", None)
    assert "needs 4 CPU" in why and "the largest has 2 CPU, 0 GPU" in why
    assert "1 GPU" in never_fits(job(2, 1, use_gpu=True), two, "STRICT_SPREAD", None)
    assert never_fits(job(2, 1, use_gpu=True), [node(gpu=1), node("10.0.0.2", gpu=1)], "STRICT_SPREAD", None) is None
    assert "STRICT_PACK" in never_fits(job(2, 2), two, "STRICT_PACK", None)


def test_a_machine_local_workspace_is_refused_on_a_cluster_of_other_machines():
    local = [node(head=True), node("127.0.0.1")]
    remote = [node(head=True), node("10.99.0.7")]
    assert machine_local_store_problem("sqlite:////ws/runyard.db", "/ws/artifacts", local) is None
    problem = machine_local_store_problem("sqlite:////ws/runyard.db", "/ws/artifacts", remote)
    assert "10.99.0.7" in problem and "metadata store is SQLite and its artifact store is a local folder" in problem
    assert "PostgreSQL" in problem
    assert "artifact store is a local folder" in machine_local_store_problem(
        "postgresql+psycopg://db/runyard", "/ws/artifacts", remote)
    assert machine_local_store_problem("postgresql+psycopg://db/runyard", "s3://bucket/runyard", remote) is None


def ray_request(the_job, tracking="sqlite:////ws/runyard.db", artifacts="/ws/artifacts", strategy="STRICT_SPREAD"):
    """What RayTarget's dryrun builds (no cluster is asked)."""
    return RayRequest(target="rc", run=RunRef("exp_1_r", "exp"), job=the_job, snapshot_id="s" * 64, environment=None,
                      workspace={"path": "/ws", "tracking_uri": tracking, "artifact_uri": artifacts},
                      settings={"log_max_mb": 1.0}, run_env={"NOTE": "ü"}, submitted_ns=1, launcher="pytorch",
                      bundle=bundle_for(the_job), strategy=strategy, dashboard="http://127.0.0.1:8265",
                      driver_python="", nodes_now=0)


def test_the_driver_request_survives_its_encoding():
    request = ray_request(job(2, 2))
    assert decode_request(encode_request(request)) == request


def test_placement_is_decided_against_the_cluster_nodes():
    """What the target learns from the cluster before anything is stored, checked on a node list (no cluster)."""
    import sys

    request = ray_request(job(2, 1))
    here = placed(request, [node(head=True), node("127.0.0.2")], "rc", None)
    assert here.nodes_now == 2 and here.driver_python == sys.executable  # every node is this machine
    assert here.job == request.job and here.run == request.run  # only what the cluster told is added
    with pytest.raises(ComputeError, match="rc' can never run this job: each node of the job needs 1 CPU, 1 GPU"):
        placed(ray_request(job(2, 1, use_gpu=True)), [node(head=True), node("127.0.0.2")], "rc", None)
    with pytest.raises(ComputeError, match="10.99.0.7"):
        placed(request, [node(head=True), node("10.99.0.7")], "rc", None)
    shared = ray_request(job(2, 1), "postgresql+psycopg://db/runyard", "s3://bucket/runyard")
    assert placed(shared, [node("10.99.0.6", head=True), node("10.99.0.7")], "rc", 2).driver_python == "python3"
    with pytest.raises(ComputeError, match="max_nodes=1"):
        placed(shared, [node("10.99.0.6", head=True), node("10.99.0.7")], "rc", 1)


def test_registry_names_targets_and_refuses_what_it_cannot_reach(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert type(ComputeTarget(ws, "local")).__name__ == "LocalTarget"
    assert list(ws.compute_targets) == ["local"]
    with pytest.raises(ComputeTargetNotFound, match="unknown compute target 'gpu-cluster'"):
        ComputeTarget(ws, "gpu-cluster")
    # Nothing listens on this port: creating the target fails and leaves nothing registered.
    from runyard.runtime.resources import free_ports

    port = free_ports(1)[0]
    with pytest.raises(ComputeError, match=f"cannot reach the Ray cluster's dashboard at http://127.0.0.1:{port}"):
        ComputeTarget.create(ws, "rc", RayCompute.attach_configuration(f"http://127.0.0.1:{port}"))
    assert list(ws.compute_targets) == ["local"]
    with pytest.raises(ConfigError, match="built-in"):
        ComputeTarget.create(ws, "local", RayCompute.attach_configuration(f"http://127.0.0.1:{port}"))
    # A target registered earlier whose cluster went away: submit says so before anything is stored.
    ws.metadata.create_compute_target("gone", "ray", RayCompute.attach_configuration(
        f"http://127.0.0.1:{port}").to_dict())
    target = get_target(ws, "gone")
    assert target.get_status().provisioning_state == "Unreachable"
    from runyard import Experiment, ScriptRunConfig

    (tmp_path / "t.py").write_text("print(1)\n")
    with pytest.raises(ComputeError, match="cannot reach the Ray cluster"):
        Experiment(ws, "x").submit(ScriptRunConfig(str(tmp_path), "t.py", compute_target=target))
    assert not ws.metadata.list_runs()  # nothing was stored
    target.delete()
    with pytest.raises(ComputeTargetNotFound):
        ComputeTarget(ws, "gone")


def test_ray_auth_token_is_found_where_rays_own_clients_look(tmp_path, monkeypatch):
    """A cluster started where ~/.ray/auth_token exists requires it: runyard's REST calls send what Ray's would."""
    from runyard.compute.ray_jobs import ray_auth_token

    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_auth_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    assert ray_auth_token() == "from-home"
    (tmp_path / "elsewhere").write_text("from-path")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "elsewhere"))
    assert ray_auth_token() == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_auth_token() == "from-env"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert ray_auth_token() is None
