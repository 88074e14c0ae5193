"""Horovod without a manual step: environments that name it (or a framework estimator with MPI, as Azure's images
had it) get it compiled for their PyTorch/TensorFlow when built, and Horovod scripts run unchanged on 2 MPI ranks.

Horovod is compiled once per machine and frameworks (about 3 minutes on 2 cores; from the source release
scripts/setup.sh fetched) into runyard's machine-wide wheel cache; later environments with the same frameworks, in
any workspace, install that wheel."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import rank_logs, write

from runyard import Environment, Experiment, MpiConfiguration, ScriptRunConfig, Workspace
from runyard.compute import get_target
from runyard.config.package_index import pip_settings
from runyard.environments.builder import uv_binary
from runyard.errors import RunyardWarning

pytestmark = [pytest.mark.integration, pytest.mark.mpi,
              pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun (apt-get install openmpi-bin)")]

TORCH_SCRIPT = """
    import horovod.torch as hvd
    import torch
    from mpi4py import MPI
    from runyard import Run
    hvd.init()
    torch.manual_seed(hvd.rank())  # different initial weights: broadcast_parameters must make them equal
    model = torch.nn.Linear(4, 1)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    data = torch.Generator().manual_seed(hvd.rank())
    for step in range(20):
        x = torch.rand(16, 4, generator=data)
        opt.zero_grad()
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        loss.backward()
        opt.step()
        average = hvd.allreduce(loss.detach(), name="loss")
        if hvd.rank() == 0:
            Run.get_context().log("loss", float(average))
    weights = hvd.allgather(model.weight.detach())
    print(f"horovod rank {hvd.rank()} of {hvd.size()} equal {bool(torch.equal(weights[0], weights[1]))} "
          f"mpi4py {MPI.COMM_WORLD.Get_rank()}/{MPI.COMM_WORLD.Get_size()}", flush=True)
"""

KERAS_SCRIPT = """
    import numpy as np
    import tensorflow as tf
    import horovod.tensorflow.keras as hvd
    from runyard import Run
    hvd.init()
    rng = np.random.default_rng(hvd.rank())  # each rank its own shard
    x = rng.normal(size=(512, 8)).astype("float32")
    y = (x.sum(1) > 0).astype("int64")
    model = tf.keras.Sequential([tf.keras.layers.Input((8,)), tf.keras.layers.Dense(16, activation="relu"),
                                 tf.keras.layers.Dense(2)])
    opt = hvd.DistributedOptimizer(tf.keras.optimizers.Adam(0.01 * hvd.size()))
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=opt,
                  metrics=["accuracy"])
    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback(),
                 hvd.callbacks.LearningRateWarmupCallback(initial_lr=0.01 * hvd.size(), warmup_epochs=1)]
    history = model.fit(x, y, batch_size=32, epochs=4, callbacks=callbacks, verbose=0)
    if hvd.rank() == 0:
        for acc in history.history["accuracy"]:
            Run.get_context().log("accuracy", float(acc))
    gathered = hvd.allgather(tf.constant(model.get_weights()[0][None]))
    print(f"keras rank {hvd.rank()} of {hvd.size()} same {bool(np.allclose(gathered[0], gathered[1]))} "
          f"acc {history.history['accuracy'][-1]:.4f} keras {tf.keras.__name__.split('.')[0]}", flush=True)
"""


# compiled here, or on this machine earlier (by another test or a run of the same frameworks): a fresh machine compiles
COMPILED_OR_CACHED = re.compile(r"compiling Horovod 0\.28\.1|Horovod 0\.28\.1: using the wheel built earlier")


@pytest.fixture
def ws(tmp_path, local_packages):
    return Workspace(tmp_path / "ws")


def build_log(ws, run):
    return "".join(get_target(ws, "local").build_log_iter(run.id))


@pytest.mark.torch
@pytest.mark.timeout(900)  # a fresh machine compiles Horovod here
def test_pytorch_estimator_with_mpi_gets_horovod_as_azures_image_had_it(ws, tmp_path):
    from runyard.train.dnn import PyTorch

    proj = write(tmp_path / "pt", "train.py", TORCH_SCRIPT)
    # The notebook names no Horovod: a PyTorch estimator with MPI ran on an Azure image that had it (and mpi4py).
    est = PyTorch(proj, entry_script="train.py", framework_version="2.13",
                  distributed_training=MpiConfiguration(process_count_per_node=2))
    with pytest.warns(RunyardWarning, match="gets Horovod 0.28.1 and mpi4py"):
        run = Experiment(ws, "hvd").submit(est)
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", build_log(ws, run)
    out = rank_logs(ws, run, 2)
    assert "horovod rank 0 of 2 equal True mpi4py 0/2" in out[0]
    assert "horovod rank 1 of 2 equal True mpi4py 1/2" in out[1]
    assert len(run.get_metrics()["loss"]) == 20
    log = build_log(ws, run)
    assert COMPILED_OR_CACHED.search(log) and "horovod imports, built with MPI" in log

    # Naming it (pip) in the same job asks for the same environment: built, so no build at all.
    again = PyTorch(proj, entry_script="train.py", framework_version="2.13", pip_packages=["horovod[pytorch]"],
                    distributed_training=MpiConfiguration(process_count_per_node=2))
    second = Experiment(ws, "hvd").submit(again)
    assert second.wait_for_completion()["status"] == "Completed"
    assert "compiling Horovod" not in build_log(ws, second)
    # Another environment with the same frameworks (one process, no mpi4py) installs the wheel compiled above.
    single = write(tmp_path / "one", "one.py", "import horovod.torch as hvd\nhvd.init()\nprint('size', hvd.size())\n")
    third = Experiment(ws, "hvd").submit(PyTorch(single, entry_script="one.py", framework_version="2.13",
                                                 pip_packages=["horovod"]))
    assert third.wait_for_completion()["status"] == "Completed"
    log = build_log(ws, third)
    assert "using the wheel built earlier" in log and "compiling Horovod" not in log
    assert "size 1" in rank_logs(ws, third, 1)[0]

    # An interpreter the user manages (a venv with torch): `runyard env horovod PYTHON` puts it there.
    venv = tmp_path / "mine"
    torch_pin = next(line for line in built_packages(ws) if line.startswith("torch=="))
    subprocess.run([uv_binary(), "venv", str(venv), "--python", sys.executable, "-q"], check=True)
    subprocess.run([uv_binary(), "pip", "install", "-q", "--python", str(venv / "bin/python"), torch_pin, "numpy",
                    *pip_settings().uv_args()], check=True)
    cli = subprocess.run([str(Path(sys.executable).parent / "runyard"), "env", "horovod", str(venv / "bin/python")],
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "using the wheel built earlier" in cli.stdout and "is built into" in cli.stdout
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import horovod.torch as h; print(h.mpi_built())"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "True", probe.stderr
    missing = subprocess.run([str(Path(sys.executable).parent / "runyard"), "env", "horovod", str(tmp_path / "no")],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "does not exist" in missing.stdout + missing.stderr


def built_packages(ws) -> list[str]:
    """``name==version`` of what the workspace's built environments hold (their markers' record)."""
    markers = (ws.path / "envs").glob("*/runyard-env.json")
    return sorted({p for m in markers for p in json.loads(m.read_text())["packages"]})


@pytest.mark.tf
@pytest.mark.timeout(900)
def test_keras_script_on_two_ranks_from_a_spec_that_only_names_horovod(ws, tmp_path):
    proj = write(tmp_path / "tf", "train.py", KERAS_SCRIPT)
    env = Environment("tf-horovod")
    env.python.conda_dependencies.add_pip_package("tensorflow-cpu==2.21.*")
    env.python.conda_dependencies.add_pip_package("horovod[tensorflow-keras]==0.19.1")  # an Azure-era pin
    env.environment_variables = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    config = ScriptRunConfig(proj, "train.py", environment=env,
                             distributed_job_config=MpiConfiguration(process_count_per_node=2))
    with pytest.warns(RunyardWarning, match=r"building Horovod 0\.28\.1, its last release"):
        run = Experiment(ws, "hvd-keras").submit(config)
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Completed", build_log(ws, run)
    out = rank_logs(ws, run, 2)
    for rank in (0, 1):
        assert f"keras rank {rank} of 2 same True" in out[rank] and "keras tf_keras" in out[rank], out[rank]
    # MetricAverageCallback: both ranks report the averaged accuracy, so the same number
    assert out[0].split(" acc ")[1].split()[0] == out[1].split(" acc ")[1].split()[0]
    accuracy = run.get_metrics()["accuracy"]
    assert len(accuracy) == 4 and accuracy[-1] > 0.8  # it learned
    log = build_log(ws, run)
    assert "tf-keras==2.21.*" in log and COMPILED_OR_CACHED.search(log)
