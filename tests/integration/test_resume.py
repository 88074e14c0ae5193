"""Resuming from checkpoints as Azure ML does: ``resume_from=DataPath`` (a previous run's outputs, or a datastore
folder) is made available to the run and ``--resume-from <its local path>`` appended to its arguments."""
from __future__ import annotations

import json
import textwrap

import pytest

from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data import DataPath, DataPathComputeBinding
from runyard.errors import NotFound, ValidationError
from runyard.train.dnn import TensorFlow
from runyard.train.estimator import Estimator

pytestmark = pytest.mark.integration

TRAIN = textwrap.dedent("""
    import argparse, json, os
    from runyard import Run
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--resume-from", default=None)
    a = p.parse_args()
    run = Run.get_context()
    start, weight = 0, 0.0
    if a.resume_from:
        with open(os.path.join(a.resume_from, "checkpoint.json")) as f:
            state = json.load(f)
        start, weight = state["epoch"], state["weight"]
        print(f"resumed from epoch {start} in {a.resume_from}")
    os.makedirs("outputs", exist_ok=True)
    for epoch in range(start + 1, start + a.epochs + 1):
        weight += 0.5
        run.log("epoch", epoch)
        with open("outputs/checkpoint.json", "w") as f:
            json.dump({"epoch": epoch, "weight": weight}, f)
""")


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    return root


def epochs(run) -> list[int]:
    value = run.get_metrics()["epoch"]
    return value if isinstance(value, list) else [value]


def test_a_run_resumes_from_the_outputs_of_the_previous_one(ws, project, tmp_path):
    exp = Experiment(ws, "resume")
    first = exp.submit(ScriptRunConfig(str(project), "train.py"))
    assert first.wait_for_completion()["status"] == "Completed" and epochs(first) == [1, 2, 3]
    path = first._get_outputs_datapath()
    assert isinstance(path, DataPath) and path.run_id == first.id and path.path_on_datastore == "outputs"

    second = exp.submit(ScriptRunConfig(str(project), "train.py", arguments=["--epochs", 2], resume_from=path))
    assert second.wait_for_completion()["status"] == "Completed", second.get_details()
    assert epochs(second) == [4, 5]  # continued from the checkpoint's epoch
    args = second.get_details()["runDefinition"]["arguments"]
    assert args[:2] == ["--epochs", "2"] and args[2] == "--resume-from" and "resume_from" in args[3]
    [entry] = second.get_details()["inputDatasets"]
    assert entry["consumptionDetails"] == {"type": "RunInput", "inputName": "resume_from", "mechanism": "Download"}
    assert entry["dataReference"] == {"datastore": "workspaceartifactstore",
                                      "path": f"ExperimentRun/dcid.{first.id}/outputs"}
    second.download_file("outputs/checkpoint.json", str(tmp_path / "ckpt.json"))
    assert json.loads((tmp_path / "ckpt.json").read_text()) == {"epoch": 5, "weight": 2.5}

    # An Estimator with script_params (the 2019 notebooks' form) gets the same.
    third = exp.submit(Estimator(str(project), entry_script="train.py", script_params={"--epochs": 1},
                                 resume_from=second._get_outputs_datapath()))
    assert third.wait_for_completion()["status"] == "Completed" and epochs(third) == [6]


def test_resume_from_a_datastore_folder_and_what_is_refused(ws, project, tmp_path):
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    (checkpoints / "checkpoint.json").write_text(json.dumps({"epoch": 10, "weight": 1.0}))
    store = ws.get_default_datastore()
    store.upload(str(checkpoints), target_path="checkpoints/run-a", show_progress=False)
    path = DataPath(store, "checkpoints/run-a")
    run = Experiment(ws, "resume").submit(ScriptRunConfig(str(project), "train.py", arguments=["--epochs", 1],
                                                          resume_from=path))
    assert run.wait_for_completion()["status"] == "Completed" and epochs(run) == [11]
    ref = path.create_data_reference("ckpt", DataPathComputeBinding(mode="download"))
    assert ref.to_input()["mode"] == "download" and str(ref) == "${RUNYARD_DATA_ckpt}"

    # A framework estimator takes it too (nothing is built to check its job).
    job = TensorFlow(str(project), entry_script="train.py", framework_version="2.21", resume_from=path).to_job_spec()
    assert job.arguments == ("--resume-from", "${RUNYARD_DATA_resume_from}")
    assert [i["name"] for i in job.inputs] == ["resume_from"]

    with pytest.raises(ValidationError, match="resume_from must be a DataPath"):
        ScriptRunConfig(str(project), "train.py", resume_from="outputs/")
    with pytest.raises(ValidationError, match="downloaded, not mounted"):
        run._get_outputs_datapath().create_data_reference("x", DataPathComputeBinding(mode="mount"))
    empty = Experiment(ws, "resume").start_logging(outputs=False)
    empty.complete()
    before = ws.metadata.count_runs()
    with pytest.raises(NotFound, match=f"run {empty.id} stored no files under outputs/"):
        Experiment(ws, "resume").submit(ScriptRunConfig(str(project), "train.py",
                                                        resume_from=empty._get_outputs_datapath()))
    assert ws.metadata.count_runs() == before  # refused before anything was stored


SWEEP_TRAIN = textwrap.dedent("""
    import argparse, json, os, time
    from runyard import Run
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float)
    p.add_argument("--resume-from", default=None)
    a = p.parse_args()
    run = Run.get_context()
    start = 0
    if a.resume_from:
        start = json.load(open(os.path.join(a.resume_from, "checkpoint.json")))["epoch"]
    os.makedirs("outputs", exist_ok=True)
    for epoch in range(start + 1, 21):
        run.log("acc", epoch * a.lr)
        run.log("epoch", epoch)
        json.dump({"epoch": epoch}, open("outputs/checkpoint.json", "w"))
        run.flush()
        time.sleep(0.25)
""")


def test_a_sweep_resumes_a_canceled_trial_from_its_checkpoint(ws, tmp_path):
    """HyperDrive's resume_child_runs: the trial runs again with its configuration and --resume-from its outputs."""
    from conftest import wait_for

    from runyard.hyperdrive import GridParameterSampling, HyperDriveConfig, choice
    from runyard.hyperdrive.config import HYPERPARAMETERS_TAG, RESUMED_TAG

    proj = tmp_path / "sweep"
    proj.mkdir()
    (proj / "train.py").write_text(SWEEP_TRAIN)

    def sweep(**resume):
        return HyperDriveConfig(run_config=ScriptRunConfig(str(proj), "train.py"),
                                hyperparameter_sampling=GridParameterSampling({"--lr": choice(0.5, 0.1)}),
                                primary_metric_name="acc", primary_metric_goal="MAXIMIZE",
                                max_total_runs=1 if resume else 2, max_concurrent_runs=1 if resume else 2, **resume)

    first = Experiment(ws, "sweep").submit(sweep())
    wait_for(lambda: len(list(first.get_children())) == 2 and all(
        len(epochs(c)) >= 3 for c in first.get_children() if "epoch" in c.get_metrics()) and all(
        "epoch" in c.get_metrics() for c in first.get_children()), 60, "both trials at epoch 3")
    first.cancel()
    assert first.wait_for_completion()["status"] == "Canceled"
    children = list(first.get_children())
    assert {c.get_status() for c in children} == {"Canceled"}
    earlier = children[0]
    earlier.download_file("outputs/checkpoint.json", str(tmp_path / "ckpt.json"))  # a canceled run's outputs are kept
    stopped_at = json.loads((tmp_path / "ckpt.json").read_text())["epoch"]
    assert stopped_at >= 3

    second = Experiment(ws, "sweep").submit(sweep(resume_from=[first], resume_child_runs=[earlier]))
    assert second.wait_for_completion()["status"] == "Completed"
    [again] = list(second.get_children())
    assert again.get_tags()[RESUMED_TAG] == earlier.id
    assert again.get_tags()[HYPERPARAMETERS_TAG] == earlier.get_tags()[HYPERPARAMETERS_TAG]  # its configuration
    assert epochs(again)[0] == stopped_at + 1 and epochs(again)[-1] == 20  # from its checkpoint, not from epoch 1
    assert again.get_details()["runDefinition"]["arguments"][-2] == "--resume-from"
    log = "".join(second._target().log_iter(second.id))
    assert "warm start from 2 earlier trial(s)" in log  # the resumed trial is one of its sweep's two, counted once
    assert f"resuming {earlier.id} from its outputs" in log

    empty = Experiment(ws, "sweep").start_logging(outputs=False)
    empty.complete()
    from runyard.errors import ConfigError

    with pytest.raises(ConfigError, match="stored no files under outputs/"):
        Experiment(ws, "sweep").submit(sweep(resume_child_runs=[empty]))
