"""Distributed runs for real on this machine: mpirun + mpi4py, PyTorch DDP on Gloo, TensorFlow ps/chief and
MultiWorkerMirroredStrategy, fail-fast and cancel."""
from __future__ import annotations

import shutil
import time

import psutil
import pytest
from conftest import rank_logs, write

from runyard import (
    ConfigError,
    ValidationError,
    Experiment,
    MpiConfiguration,
    PyTorchConfiguration,
    ScriptRunConfig,
    TensorflowConfiguration,
    Workspace,
)

pytestmark = [pytest.mark.integration]
needs_mpi = pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun (apt-get install openmpi-bin)")


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def left_behind(folder) -> list:
    """Processes working in ``folder`` (a run's working copy) or naming it on their command line."""
    return [p for p in psutil.process_iter(["cwd", "cmdline"])
            if (p.info["cwd"] or "").startswith(str(folder)) or str(folder) in " ".join(p.info["cmdline"] or [])]


def assert_all_gone(folder, timeout: float = 10) -> None:
    """Every process of the run ends (the supervisor itself a moment after the final status)."""
    deadline = time.monotonic() + timeout
    while left_behind(folder):
        assert time.monotonic() < deadline, left_behind(folder)
        time.sleep(0.1)


MPI_JOB = """
    import os, sys, time
    from mpi4py import MPI
    from runyard import Run
    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    total = comm.allreduce(rank + 1, op=MPI.SUM)
    print(f"rank {rank} of {comm.Get_size()} local {os.environ['OMPI_COMM_WORLD_LOCAL_RANK']} sum {total}", flush=True)
    Run.get_context().log("sum", total)
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "fail" and rank == 1:
        raise ValueError("rank 1 broke")
    if mode in ("fail", "sleep"):
        comm.Barrier() if mode == "fail" else time.sleep(120)   # rank 0 would wait forever without fail-fast
"""


@pytest.mark.mpi
@needs_mpi
def test_mpi_allreduce_over_four_ranks_with_a_log_per_rank(ws, tmp_path):
    pytest.importorskip("mpi4py")
    proj = write(tmp_path / "mpi", "job.py", MPI_JOB)
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(proj, "job.py", distributed_job_config=MpiConfiguration(4)))
    assert run.wait_for_completion()["status"] == "Completed"
    out = rank_logs(ws, run, 4)
    assert [f"rank {r} of 4 local {r} sum 10" in out[r] for r in range(4)] == [True] * 4  # each rank its own log
    assert "rank 1" not in out[0]
    metrics = run.get_metrics()
    assert metrics["sum"] == 10 and metrics["sum/rank3"] == 10  # ranks ≠ 0 are tagged
    assert "logs/runyard/launcher.txt" in run.get_file_names()


@pytest.mark.mpi
@needs_mpi
def test_mpi_rank_failure_stops_the_job_and_names_the_rank(ws, tmp_path):
    pytest.importorskip("mpi4py")
    proj = write(tmp_path / "mpi", "job.py", MPI_JOB)
    started = time.monotonic()
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(proj, "job.py", arguments=["fail"],
                                                       distributed_job_config=MpiConfiguration(2)))
    error = run.wait_for_completion(raise_on_error=False)["error"]
    assert time.monotonic() - started < 15
    assert error["rank"] == 1 and "job.py (rank 1) exited with code 1: ValueError: rank 1 broke" == error["message"]
    assert error["last_lines"][-1] == "ValueError: rank 1 broke"
    assert_all_gone(ws.path / "local" / "runs" / run.id)


@pytest.mark.mpi
@needs_mpi
def test_cancel_of_a_four_rank_job_leaves_no_process(ws, tmp_path):
    pytest.importorskip("mpi4py")
    proj = write(tmp_path / "mpi", "job.py", MPI_JOB)
    run = Experiment(ws, "mpi").submit(ScriptRunConfig(proj, "job.py", arguments=["sleep"],
                                                       distributed_job_config=MpiConfiguration(4)))
    deadline = time.monotonic() + 30
    while not all("sum 10" in text for text in rank_logs(ws, run, 4)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run_dir = ws.path / "local" / "runs" / run.id
    assert len(left_behind(run_dir / "wd")) >= 4
    run.cancel()
    assert run.get_status() == "Canceled"
    assert_all_gone(run_dir)  # ranks, mpirun and its daemon, the supervisor


def test_missing_mpirun_is_a_clear_error(ws, tmp_path, monkeypatch):
    proj = write(tmp_path / "mpi", "job.py", MPI_JOB)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ConfigError, match="mpirun, which is not on PATH — install it .*apt-get install openmpi-bin"):
        Experiment(ws, "mpi").submit(ScriptRunConfig(proj, "job.py", distributed_job_config=MpiConfiguration(2)))
    assert ws.metadata.list_runs() == []


RESUMING = """
    import os, sys, time
    rank = int(os.environ["RANK"])
    os.makedirs("outputs", exist_ok=True)
    if rank == 0:
        if os.path.exists("outputs/ckpt.txt"):
            print("resumed from step", open("outputs/ckpt.txt").read(), flush=True)
        else:
            print("starting fresh", flush=True)
            open("outputs/ckpt.txt", "w").write("5")  # a checkpoint, then a long wait: the failure comes first
            time.sleep(60)
    elif not os.path.exists("outputs/failed-once"):
        open("outputs/failed-once", "w").write("1")
        time.sleep(0.5)
        sys.exit(3)
"""


def test_max_run_retries_restarts_every_rank_and_keeps_outputs(ws, tmp_path):
    proj = write(tmp_path / "retry", "resume.py", RESUMING)
    pytorch = PyTorchConfiguration(process_count=2)
    run = Experiment(ws, "retry").submit(ScriptRunConfig(proj, "resume.py", distributed_job_config=pytorch,
                                                         max_run_retries=2))
    assert run.wait_for_completion()["status"] == "Completed"
    out = rank_logs(ws, run, 1)[0]
    assert "starting fresh" in out and out.index("starting fresh") < out.index("resumed from step 5")
    assert run.get_tags()["runyard.attempt"] == "2"
    assert {"outputs/ckpt.txt", "outputs/failed-once"} <= set(run.get_file_names())
    assert run.get_details()["runDefinition"]["maxRunRetries"] == 2

    once = Experiment(ws, "retry").submit(ScriptRunConfig(proj, "resume.py", distributed_job_config=pytorch))  # no retry
    error = once.wait_for_completion(raise_on_error=False)["error"]
    assert error["rank"] == 1 and error["exit_code"] == 3 and "attempts" not in error
    with pytest.raises(ValidationError, match="max_run_retries must be a whole number >= 0"):
        ScriptRunConfig(proj, "resume.py", max_run_retries=-1).to_job_spec()


def test_node_count_above_one_on_local_points_to_ray(ws, tmp_path):
    proj = write(tmp_path / "p", "t.py", "print(1)\n")
    with pytest.raises(Exception, match="Ray compute target"):
        Experiment(ws, "x").submit(ScriptRunConfig(proj, "t.py", distributed_job_config=MpiConfiguration(2, node_count=2)))


DDP = """
    import os, sys, torch, torch.distributed as dist
    from runyard import Run
    dist.init_process_group(os.environ["RUNYARD_COMMUNICATION_BACKEND"])
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.Generator().manual_seed(rank)  # each rank its own batches: only DDP keeps them equal
    for step in range(20):
        x = torch.rand(32, 4, generator=data); y = x.sum(1, keepdim=True)
        opt.zero_grad(); loss = ((model(x) - y) ** 2).mean(); loss.backward(); opt.step()
        Run.get_context().log("loss", loss.item())
    if len(sys.argv) > 1 and rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    print(f"rank {rank}/{world} local {os.environ['LOCAL_RANK']} params {flat.tolist()} "
          f"equal {all(torch.equal(gathered[0], t) for t in gathered)}", flush=True)
    dist.destroy_process_group()
    Run.get_context().flush()  # os._exit skips the logger's final flush
    os._exit(0)  # torch 2.13 + gloo: interpreter exit sometimes aborts ("terminate called without an active exception")
"""


@pytest.mark.torch
def test_pytorch_ddp_on_gloo_keeps_ranks_equal_and_a_failing_rank_stops_the_job(ws, tmp_path, local_packages):
    from runyard.train.dnn import PyTorch

    proj = write(tmp_path / "ddp", "ddp.py", DDP)
    est = PyTorch(proj, entry_script="ddp.py", distributed_training=PyTorchConfiguration("Gloo", process_count=2))
    run = Experiment(ws, "ddp").submit(est)
    assert run.wait_for_completion()["status"] == "Completed"
    out = rank_logs(ws, run, 2)
    params = [text.split("params ")[1].split(" equal")[0] for text in out]
    assert params[0] == params[1] and all("equal True" in text for text in out)
    assert "rank 1/2 local 1" in out[1]
    metrics = run.get_metrics()
    assert len(metrics["loss"]) == 20 and len(metrics["loss/rank1"]) == 20

    started = time.monotonic()
    failing = Experiment(ws, "ddp").submit(PyTorch(proj, entry_script="ddp.py", arguments=["fail"],
                                                   distributed_training=PyTorchConfiguration("Gloo", process_count=2)))
    error = failing.wait_for_completion(raise_on_error=False)["error"]
    assert time.monotonic() - started < 15  # rank 0 blocks in all_gather: only fail-fast ends it
    assert error["rank"] == 1 and error["message"] == "ddp.py (rank 1) exited with code 1: RuntimeError: rank 1 failed on purpose"


PS_TRAIN = """
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from runyard import Run
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("worker", "ps"):      # workers and ps serve until runyard stops them
        tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type, task_index=resolver.task_id,
                             protocol="grpc", start=True).join()
    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        w = tf.Variable(tf.zeros([4, 1])); b = tf.Variable(0.0); opt = tf.keras.optimizers.SGD(0.1)
    print("variables on", w.device, flush=True)
    def dataset_fn():
        x = tf.random.stateless_uniform([256, 4], seed=[1, 2])
        return tf.data.Dataset.from_tensor_slices((x, tf.reduce_sum(x, 1, keepdims=True))).repeat().batch(32)
    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))
    @tf.function
    def step(it):
        def replica(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(x, w) + b - y) ** 2)
            opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
            return loss
        return strategy.run(replica, args=next(it))
    for epoch in range(5):
        results = [coordinator.schedule(step, args=(iterator,)) for _ in range(20)]
        coordinator.join()
        Run.get_context().log("loss", float(results[-1].fetch()))
"""

MWMS = """
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        w = tf.Variable(tf.zeros([4, 1])); opt = tf.keras.optimizers.SGD(0.1)
    task = strategy.cluster_resolver.task_id
    x = tf.random.stateless_uniform([64, 4], seed=[task, 7]); y = tf.reduce_sum(x, 1, keepdims=True)
    @tf.function
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
            opt.apply_gradients([(tape.gradient(loss, w), w)])
            return loss
        return strategy.run(replica)
    for _ in range(30):
        step()
    print(f"worker {task} of {strategy.num_replicas_in_sync} w {[round(v, 6) for v in w.numpy().flatten()]}", flush=True)
"""


@pytest.mark.tf
def test_tensorflow_parameter_servers_with_a_chief_and_multi_worker_mirrored(ws, tmp_path, local_packages):
    from runyard.train.dnn import TensorFlow

    proj = write(tmp_path / "tf", "ps_train.py", PS_TRAIN)
    write(proj, "mwms.py", MWMS)
    ps = Experiment(ws, "tf").submit(TensorFlow(proj, entry_script="ps_train.py", distributed_training=
                                                TensorflowConfiguration(worker_count=2, parameter_server_count=1, chief=True)))
    assert ps.wait_for_completion()["status"] == "Completed"  # the chief ended: the serving tasks were stopped
    assert "variables on /job:ps/replica:0/task:0" in rank_logs(ws, ps, 1)[0]
    losses = ps.get_metrics()["loss"]
    assert len(losses) == 5 and losses[-1] < 0.1
    assert_all_gone(ws.path / "local" / "runs" / ps.id)

    mw = Experiment(ws, "tf").submit(TensorFlow(proj, entry_script="mwms.py", distributed_training=
                                                TensorflowConfiguration(worker_count=2, parameter_server_count=0)))
    assert mw.wait_for_completion()["status"] == "Completed"
    out = rank_logs(ws, mw, 2)
    weights = [text.split(" w ")[1].strip() for text in out]
    assert "worker 0 of 2" in out[0] and "worker 1 of 2" in out[1] and weights[0] == weights[1]
