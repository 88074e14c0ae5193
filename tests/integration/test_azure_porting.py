"""Porting from Azure ML for real: one project per SDK generation, written for Azure (``tests/azure_ports``), is
migrated with ``runyard migrate --write`` (only import lines may change) and run end to end on this machine; then
the workspace it leaves is checked the way a user would: runs Completed, metrics, models, the service's answers.

The AmlCompute idiom, curated environments, the compatibility variables and the older deployment calls each get a
focused test below as well.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runyard import ComputeError, ConfigError, Environment, Experiment, NotFound, ScriptRunConfig, Workspace
from runyard.errors import ComputeTargetException, RunyardWarning
from runyard.train.frameworks import series_key

pytestmark = [pytest.mark.integration]
PORTS = Path(__file__).resolve().parent.parent / "azure_ports"
RUNYARD = str(Path(sys.executable).with_name("runyard"))
IMPORT_LINE = re.compile(r"^\s*(from\s+\S+\s+import\b|import\s)")
needs_mpi = pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun (apt-get install openmpi-bin)")


@pytest.fixture
def ported(tmp_path):
    """A copy of the Azure projects, migrated by the CLI; returns (copy, migrate's output)."""
    copy = tmp_path / "ports"
    shutil.copytree(PORTS, copy)
    dry = subprocess.run([RUNYARD, "migrate", str(copy)], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "+from runyard import Workspace, Experiment" in dry.stdout and "would rewrite 10" in dry.stdout
    assert _texts(copy) == _texts(PORTS)  # a dry run writes nothing
    done = subprocess.run([RUNYARD, "migrate", "--write", str(copy)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return copy, done.stdout


def _texts(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_migrate_changes_import_lines_only_and_a_second_pass_changes_nothing(ported):
    copy, out = ported
    before, after = _texts(PORTS), _texts(copy)
    assert before.keys() == after.keys()
    changed = 0
    for name, old in before.items():
        old_lines, new_lines = old.decode().splitlines(True), after[name].decode().splitlines(True)
        assert len(old_lines) == len(new_lines), name
        for a, b in zip(old_lines, new_lines):
            if a == b:
                continue
            changed += 1
            code_a, code_b = (json.loads(x.strip().rstrip(",")) if name.endswith(".ipynb") else x for x in (a, b))
            assert IMPORT_LINE.match(code_a) and IMPORT_LINE.match(code_b), (name, a, b)
            assert "azureml" in code_a and code_b.replace("runyard.azureml", "").count("azureml") <= 1
    assert changed == 39
    for name, text in after.items():  # no azureml import left in code (the notebook's markdown keeps its mention)
        if name.endswith(".py"):
            assert not re.search(r"^\s*(from|import)\s+azureml", text.decode(), re.M), name
    notebook = json.loads(after["sdk2020/datasets.ipynb"])
    assert "Before: `from azureml.core import Workspace, Dataset`" in "".join(notebook["cells"][0]["source"])
    again = subprocess.run([RUNYARD, "migrate", str(copy)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "would rewrite 0" in again.stdout


def _run_flow(copy: Path, script: str, timeout: float = 600) -> tuple[Workspace, str]:
    """Run a migrated driver as a user would (``python script``) in its folder, with its own workspace."""
    folder = copy / Path(script).parent
    Workspace.create(folder)
    path = folder / Path(script).name
    if path.suffix == ".ipynb":  # a notebook: its code cells in order, IPython magics left out
        cells = json.loads(path.read_text())["cells"]
        code = "\n\n".join("".join(line for line in c["source"] if not re.match(r"\s*[%!]", line))
                           for c in cells if c["cell_type"] == "code")
        path = path.with_suffix(".py")
        path.write_text(code)
    proc = subprocess.run([sys.executable, "-W", "always::UserWarning", path.name], cwd=folder, capture_output=True,
                          text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return Workspace.from_config(folder), output


def _runs(ws: Workspace, experiment: str) -> list:
    """The experiment's runs, oldest first (get_runs answers newest first)."""
    return list(reversed(list(Experiment(ws, experiment).get_runs(include_children=True))))


@needs_mpi
@pytest.mark.mpi
@pytest.mark.torch
def test_2018_distributed_backend_estimators_on_an_amlcompute_pool(ported, local_packages):
    pytest.importorskip("mpi4py")
    ws, out = _run_flow(ported[0], "sdk2018/distributed_training.py")
    assert "SDK version: 0.1.0" in out and "Resource group: local" in out and "Azure region: local" in out
    assert "'STANDARD_NC6' is a GPU size but this machine has no GPU" in out
    assert "the job's 2 nodes × 1 process(es) run as 2 processes here" in out
    assert "'provisioningState': 'Succeeded'" in out
    mpi, gloo = _runs(ws, "distributed-2018")
    assert mpi.get_status() == gloo.get_status() == "Completed"
    assert mpi.get_metrics()["allreduce"] == [1.0, 3.0, 5.0, 7.0, 9.0]  # two ranks: rank + step summed
    from runyard.compute import get_target

    pool = get_target(ws, "gpucluster")
    assert type(pool).__name__ == "AmlComputePool" and pool.config.vm_size == "STANDARD_NC6"
    rank1 = "".join(pool.log_iter(mpi.id, rank=1))
    assert f"rank 1 of 2 task 1 run {mpi.id}" in rank1  # AZ_BATCHAI_TASK_INDEX, AZUREML_RUN_ID
    assert gloo.get_metrics()["rank_sum"] == 3.0  # $AZ_BATCHAI_PYTORCH_INIT_METHOD / $AZ_BATCHAI_TASK_INDEX worked
    assert "via tcp://127.0.0.1:" in "".join(pool.log_iter(gloo.id, rank=1))


def test_2019_framework_estimators_hyperdrive_and_the_image_deployment(ported, local_packages):
    ws, out = _run_flow(ported[0], "sdk2019/estimators.py")
    assert re.search(r"SKLearn framework_version '0.20.3' has no release for Python 3\.\d+ .*using 1\.\d+", out)
    runs = _runs(ws, "sklearn-iris-2019")
    assert [r.get_status() for r in runs] == ["Completed"] * 6  # the run, the sweep and its 4 trials
    sweep = next(r for r in runs if r.type == "hyperdrive")
    assert len(list(sweep.get_children())) == 4
    best = sweep.get_best_run_by_primary_metric()
    assert best.get_metrics()["Accuracy"] > 0.9
    from runyard import Model

    model = Model(ws, "sklearn-iris")
    assert model.run_id == best.id
    assert "prediction: [0, 1, 2]" in out  # setosa, versicolor, virginica answered by the deployed service
    assert (ported[0] / "sdk2019" / "model.joblib").is_file()  # model.download(exists_ok=True)
    assert "sklearn-iris-svc" not in ws.webservices  # deleted at the end
    assert "left out azureml-defaults" in out  # the conda file's Azure SDK package was dropped, with a notice


def test_2020_dataset_notebook_with_a_run_configuration(ported, local_packages):
    ws, out = _run_flow(ported[0], "sdk2020/datasets.ipynb")
    assert "runs this environment without a container" in out  # docker on DEFAULT_CPU_IMAGE
    (run,) = _runs(ws, "diabetes-2020")
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["rows"] == 442 and metrics["alpha"] == 0.1 and metrics["mse"] < 4000
    inputs = {i["consumptionDetails"]["inputName"]: i for i in run.get_details()["inputDatasets"]}
    assert inputs["diabetes"]["consumptionDetails"]["mechanism"] == "Direct"
    assert inputs["diabetes_files"]["consumptionDetails"]["mechanism"] == "Mount"
    assert run.get_details()["target"] == "cpu-cluster"  # src.run_config.target = compute_target
    from runyard import Dataset, Model

    assert Model(ws, "diabetes-ridge").datasets["training data"] == ["diabetes:1"]
    assert Dataset.get_by_name(ws, "diabetes").version == 1


def test_2021_curated_environment_script_run_config_and_model_deploy(ported, local_packages):
    ws, out = _run_flow(ported[0], "sdk2021/environments.py")
    assert re.search(r"AzureML-sklearn-1.0-ubuntu20.04-py38-cpu: Azure ML's curated environment, approximated by "
                     r"SKLearn 1\.\d+", out)
    (run,) = _runs(ws, "digits-2021")
    assert run.get_status() == "Completed"
    metrics = run.get_metrics()
    assert metrics["accuracy"] > 0.95 and metrics["run_id"] == run.id  # AZUREML_RUN_ID in the run
    assert "predicted [0, 1, 2, 3, 4] expected [0, 1, 2, 3, 4]" in out
    env = run.get_environment()
    assert env.name == "digits-env" and env.python.framework["name"] == "SKLearn"


# -- focused checks -----------------------------------------------------------------------------------------------
def test_the_amlcompute_idiom_on_a_local_pool(tmp_path, monkeypatch):
    from runyard.compute import AmlCompute, ComputeTarget, RemoteCompute

    monkeypatch.delenv("RUNYARD_CLUSTER", raising=False)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ComputeTargetException, match="unknown compute target 'cpu'"):
        ComputeTarget(workspace=ws, name="cpu")
    with pytest.raises(ConfigError, match="max_nodes must be"):
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=0)
    config = AmlCompute.provisioning_configuration(vm_size="Standard_NC6s_v3", max_nodes=2, min_nodes=0,
                                                   idle_seconds_before_scaledown=600, vm_priority="lowpriority",
                                                   admin_username="azureuser")
    with pytest.warns(RunyardWarning, match="is a GPU size but this machine has no GPU"):
        target = ComputeTarget.create(ws, "cpu", config)
    status = target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=1)
    assert status.serialize()["provisioningState"] == "Succeeded"
    assert ComputeTarget(workspace=ws, name="cpu").config.azure_settings == {"admin_username": "azureuser"}
    assert set(ws.compute_targets) == {"local", "cpu"}
    assert target.serialize()["properties"]["scaleSettings"]["maxNodeCount"] == 2

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "t.py").write_text("import os; print(os.environ['AZ_BATCHAI_TASK_INDEX'], os.environ['AZUREML_RUN_ID'])\n")
    from runyard import MpiConfiguration

    with pytest.raises(ComputeError, match="max_nodes=2; the job asks for node_count=3"):
        Experiment(ws, "pool").submit(ScriptRunConfig(proj, "t.py", compute_target=target,
                                                      distributed_job_config=MpiConfiguration(node_count=3)))
    assert list(Experiment(ws, "pool").get_runs()) == []  # refused before anything was stored
    run = Experiment(ws, "pool").submit(ScriptRunConfig(proj, "t.py", compute_target="cpu"))
    run.wait_for_completion(show_output=True)
    assert "".join(target.log_iter(run.id)).strip() == f"0 {run.id}"

    with pytest.raises(ConfigError, match="RayCompute.attach_configuration"):
        RemoteCompute.attach_configuration(ws, address="10.0.0.4", ssh_port=22, username="me")
    target.delete()
    assert set(ws.compute_targets) == {"local"}


def test_amlcompute_goes_to_the_ray_cluster_named_by_runyard_cluster(tmp_path, monkeypatch):
    """With RUNYARD_CLUSTER set, AmlCompute becomes a Ray target attached to it (checked on creation: an unreachable
    cluster is an error and nothing is registered). The Ray suite runs jobs on it (test_ray_target.py)."""
    from runyard.compute import AmlCompute, ComputeTarget
    from runyard.runtime.resources import free_ports

    monkeypatch.setenv("RUNYARD_CLUSTER", f"http://127.0.0.1:{free_ports(1)[0]}")
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ComputeError, match="cannot reach the Ray cluster's dashboard"):
        ComputeTarget.create(ws, "gpu-cluster", AmlCompute.provisioning_configuration(max_nodes=3))
    assert set(ws.compute_targets) == {"local"}


def test_curated_environments_resolve_and_a_registered_one_wins(tmp_path, local_packages):
    ws = Workspace(tmp_path / "ws")
    with pytest.warns(RunyardWarning, match="approximated by TensorFlow 2"):
        tf = Environment.get(ws, "AzureML-TensorFlow-2.3-CPU")
    version = tf.python.framework["version"]
    assert tf.python.framework["name"] == "TensorFlow" and version in tf.description
    # releases from before NumPy 2 get numpy<2 (TensorFlow 2.18 was the first built for it)
    assert ("numpy<2" in tf.python.conda_dependencies.pip_packages) == (series_key(version) < (2, 18))
    with pytest.warns(RunyardWarning, match="approximated by PyTorch 2.13"):  # the CPU wheel lying on disk
        torch = Environment.get(ws, "AzureML-PyTorch-1.x-GPU")
    assert torch.python.framework == {"name": "PyTorch", "version": "2.13"}
    with pytest.warns(RunyardWarning, match="runyard's client only"):
        minimal = Environment.get(ws, "AzureML-Minimal")
    assert minimal.python.conda_dependencies.pip_packages == []
    listed = Environment.list(ws)
    assert "AzureML-TensorFlow-2.x-CPU" in listed and "azureml-sklearn-1.5" in listed
    with pytest.raises(NotFound):
        Environment.get(ws, "no-such-env")
    mine = Environment("AzureML-Minimal")
    mine.python.conda_dependencies.add_pip_package("tabulate")
    mine.register(ws)
    assert Environment.get(ws, "AzureML-Minimal").python.conda_dependencies.pip_packages == ["tabulate"]
    assert Environment.list(ws)["AzureML-Minimal"].version == "1"


def test_workspace_identity_comes_from_config_json_or_sensible_defaults(tmp_path):
    ws = Workspace(tmp_path / "a")
    assert (ws.location, ws.resource_group) == ("local", "local")
    assert re.fullmatch(r"[0-9a-f-]{36}", ws.subscription_id) and Workspace(tmp_path / "a").subscription_id == ws.subscription_id
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text(json.dumps({"subscription_id": "1234", "resource_group": "rg",
                                                            "workspace_name": "ws-b", "location": "westeurope"}))
    b = Workspace(tmp_path / "b")
    assert (b.name, b.subscription_id, b.resource_group, b.location) == ("ws-b", "1234", "rg", "westeurope")
    assert b.get_details()["id"] == "/subscriptions/1234/resourceGroups/rg/providers/runyard/workspaces/ws-b"
    assert Workspace.from_config(tmp_path / "b" / "config.json", auth=object()) == b


def test_aks_deploy_configuration_turns_key_auth_on_and_records_sizing():
    from runyard.deploy import AciWebservice, AksWebservice

    aks = AksWebservice.deploy_configuration(autoscale_enabled=True, cpu_cores=2, memory_gb=4, scoring_timeout_ms=5000,
                                             tags={"team": "vision"}, description="d")
    assert aks.auth_enabled and aks.timeout_seconds == 5.0 and aks.tags == {"team": "vision"}
    assert aks.azure == {"compute_type": "AKS", "cpu_cores": 2, "memory_gb": 4, "autoscale_enabled": True}
    assert not AciWebservice.deploy_configuration(cpu_cores=1).auth_enabled


def test_a_script_still_importing_azureml_fails_with_the_way_out(tmp_path):
    ws = Workspace(tmp_path / "ws")
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "train.py").write_text("from azureml.core import Run\n")
    run = Experiment(ws, "x").submit(ScriptRunConfig(proj, "train.py"))
    error = run.wait_for_completion(raise_on_error=False)["error"]
    assert "No module named 'azureml'" in error["message"] and "runyard migrate" in error["message"]
    assert os.environ.get("AZUREML_RUN_ID") is None  # nothing leaks into the submitting process
    # A Horovod script where the environment has no Horovod (Azure's images had it): the error names the fix.
    (proj / "hvd.py").write_text("import horovod.torch as hvd\nhvd.init()\n")
    run = Experiment(ws, "x").submit(ScriptRunConfig(proj, "hvd.py"))
    error = run.wait_for_completion(raise_on_error=False)["error"]
    assert "No module named 'horovod'" in error["message"] and "name horovod in its pip packages" in error["message"]
    assert sys.executable in error["message"]  # the environment to build it in
