"""Porting from Azure ML, the pure parts: `runyard migrate`'s rewriting, the curated-environment table, version
nearness, RunConfiguration's distributed forms, the Azure module map."""
from __future__ import annotations

import json

import pytest

from runyard import migrate
from runyard.azureml import MODULES, has_name
from runyard.config import curated
from runyard.config.run_configuration import RunConfiguration
from runyard.train.frameworks import nearest

# What Azure ML notebooks import from each module (a census of the official samples' import lines).
AZURE_NAMES = {
    "azureml.core": "Workspace Experiment Run ScriptRunConfig Environment Dataset Datastore Model ComputeTarget "
                    "RunConfiguration Webservice Image ScriptRun VERSION",
    "azureml.core.runconfig": "RunConfiguration MpiConfiguration TensorflowConfiguration PyTorchConfiguration "
                              "DockerConfiguration DEFAULT_CPU_IMAGE DEFAULT_GPU_IMAGE CondaDependencies",
    "azureml.core.conda_dependencies": "CondaDependencies",
    "azureml.core.environment": "Environment CondaDependencies PythonSection DockerSection",
    "azureml.core.compute": "ComputeTarget AmlCompute RemoteCompute DsvmCompute",
    "azureml.core.compute_target": "ComputeTargetException",
    "azureml.core.model": "Model InferenceConfig",
    "azureml.core.resource_configuration": "ResourceConfiguration",
    "azureml.core.webservice": "Webservice AciWebservice AksWebservice LocalWebservice",
    "azureml.core.image": "ContainerImage Image",
    "azureml.core.run": "Run",
    "azureml.core.experiment": "Experiment",
    "azureml.core.workspace": "Workspace",
    "azureml.core.authentication": "InteractiveLoginAuthentication ServicePrincipalAuthentication "
                                   "AzureCliAuthentication MsiAuthentication",
    "azureml.core.dataset": "Dataset",
    "azureml.core.datastore": "Datastore",
    "azureml.data.data_reference": "DataReference",
    "azureml.data.datapath": "DataPath DataPathComputeBinding",
    "azureml.exceptions": "ComputeTargetException WebserviceException",
    "azureml.train.estimator": "Estimator",
    "azureml.train.dnn": "TensorFlow PyTorch Chainer Mpi ParameterServer Gloo Nccl",
    "azureml.train.sklearn": "SKLearn",
    "azureml.train.hyperdrive": "HyperDriveConfig HyperDriveRunConfig RandomParameterSampling GridParameterSampling "
                                "BayesianParameterSampling BanditPolicy MedianStoppingPolicy "
                                "TruncationSelectionPolicy NoTerminationPolicy PrimaryMetricGoal choice uniform "
                                "loguniform normal quniform",
    "azureml.train.hyperdrive.runconfig": "HyperDriveRunConfig HyperDriveConfig",
    "azureml.widgets": "RunDetails",
    "azureml.tensorboard": "Tensorboard",
    "azureml.tensorboard.export": "export_to_tensorboard",
    "azureml.telemetry": "set_diagnostics_collection",
}


@pytest.mark.parametrize("module", sorted(AZURE_NAMES))
def test_every_name_azure_notebooks_import_exists_where_migrate_sends_it(module):
    target = MODULES[module]
    assert [n for n in AZURE_NAMES[module].split() if not has_name(target, n)] == []


def test_import_azureml_core_keeps_attribute_chains_working():
    from runyard import azureml

    import runyard
    from runyard.compute import AmlCompute
    from runyard.train.dnn import TensorFlow

    assert azureml.core.VERSION == runyard.__version__
    assert azureml.core.compute.AmlCompute is AmlCompute and azureml.train.dnn.TensorFlow is TensorFlow
    with pytest.raises(AttributeError, match="no counterpart"):
        azureml.pipeline.core.Pipeline


SCRIPT = (
    "# a comment that says from azureml.core import Workspace\r\n"
    "import os, sys\r\n"
    "import azureml.core\r\n"
    "from azureml.core import Workspace, Experiment  # trailing comment stays\r\n"
    "from azureml.train.dnn import (TensorFlow,\r\n"
    "                               PyTorch)\r\n"
    "import azureml.core as aml\r\n"
    "if True:\r\n"
    "    from azureml.widgets import RunDetails\r\n"
    "x = 'from azureml.core import Run'\r\n"
    "print(azureml.core.VERSION)\r\n"
)


def test_migrate_changes_only_the_module_of_import_lines_and_keeps_line_endings():
    new, changed, problems = migrate.migrate_source(SCRIPT)
    assert problems == []
    old_lines, new_lines = SCRIPT.split("\r\n"), new.split("\r\n")
    assert len(old_lines) == len(new_lines)
    assert [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b] == [3, 4, 5, 7, 9]
    assert new_lines[2] == "from runyard import azureml"
    assert new_lines[3] == "from runyard import Workspace, Experiment  # trailing comment stays"
    assert new_lines[4] == "from runyard.train.dnn import (TensorFlow,"
    assert new_lines[6] == "import runyard as aml"
    assert new_lines[8] == "    from runyard.widgets import RunDetails"
    assert [n for n, _, _ in changed] == [3, 4, 5, 7, 9]
    again, changed_again, _ = migrate.migrate_source(new)  # idempotent
    assert again == new and changed_again == []


def test_migrate_reports_what_it_cannot_map_and_leaves_it():
    source = ("import azureml.core, os\n"
              "from azureml.pipeline.core import Pipeline\n"
              "from azureml.core import Workspace, Keyvault\n"
              "from azureml.core \\\n    import Run\n"
              "!pip install azureml-sdk\n"
              "%matplotlib inline\n"
              "from azureml.core import Experiment\n")
    new, changed, problems = migrate.migrate_source(source)
    messages = dict(problems)
    assert "together with other modules" in messages[1]
    assert "azureml.pipeline.core: runyard has no counterpart" in messages[2]
    assert "Keyvault from azureml.core" in messages[3]
    assert "split over lines" in messages[4]
    assert "installs Azure ML's SDK" in messages[6]
    assert [n for n, _, _ in changed] == [8]  # the magic lines neither break parsing nor change
    assert new.splitlines()[:7] == source.splitlines()[:7]


def test_migrate_reports_a_file_that_is_not_python():
    new, changed, problems = migrate.migrate_source("from azureml.core import Workspace\nprint 'python 2'\n")
    assert new.startswith("from azureml.core") and not changed
    assert "not valid Python" in problems[0][1]


def _notebook(cells, **dump) -> str:
    nb = {"cells": cells, "metadata": {"language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 4}
    return json.dumps(nb, **dump) + "\n"


def test_a_notebook_keeps_its_formatting_its_markdown_and_its_string_sources():
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["Run `from azureml.core import Workspace` — ✓\n"]},
             {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
              "source": ["import azureml.core\n", "from azureml.core import Workspace\n", "ws = Workspace.from_config()"]},
             {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
              "source": "from azureml.train.estimator import Estimator\nest = Estimator('.')"}]
    for dump in ({"indent": 1, "sort_keys": True, "ensure_ascii": False}, {"indent": 2, "ensure_ascii": True}):
        text = _notebook(cells, **dump)
        report = migrate.migrate_notebook(text)
        assert report.problems == [] and len(report.changed) == 3
        old_lines, new_lines = text.splitlines(), report.new_text.splitlines()
        assert len(old_lines) == len(new_lines)
        differing = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
        assert len(differing) == 3 and all("azureml" in a and "runyard" in b for a, b in differing)
        cells_after = json.loads(report.new_text)["cells"]
        assert cells_after[0] == cells[0]
        assert cells_after[1]["source"] == ["from runyard import azureml\n", "from runyard import Workspace\n",
                                            "ws = Workspace.from_config()"]
        assert cells_after[2]["source"] == "from runyard.train.estimator import Estimator\nest = Estimator('.')"


def test_a_notebook_whose_formatting_cannot_be_reproduced_is_left_alone():
    text = _notebook([{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                       "source": ["from azureml.core import Run\n"]}], indent=3)
    report = migrate.migrate_notebook(text)
    assert report.new_text is None and report.changed == []
    assert "could not be reproduced" in report.problems[0][2]


def test_nearest_release_series():
    offered = ["1.6", "1.7", "1.8", "1.9"]
    assert nearest("1.8", offered) == "1.8"
    assert nearest("0.20", offered) == "1.6"  # older than everything offered: the oldest
    assert nearest("1.10", offered) == "1.9"
    assert nearest(None, offered) == "1.9"
    assert nearest("2.x", ["1.13", "2.12", "2.21"]) == "2.21"
    assert nearest("1.x", ["2.12", "2.21"]) == "2.12"
    assert nearest("3.x", ["2.12", "2.21"]) == "2.21"
    assert nearest("1.0", []) is None


@pytest.mark.parametrize(("name", "framework", "version"), [
    ("AzureML-TensorFlow-2.3-CPU", "TensorFlow", "2.3"),
    ("AzureML-TensorFlow-2.x-GPU", "TensorFlow", "2.x"),
    ("AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu", "TensorFlow", "2.4"),
    ("AzureML-PyTorch-1.6-CPU", "PyTorch", "1.6"),
    ("AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu", "PyTorch", "1.13"),
    ("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "SKLearn", "1.0"),
    ("azureml-sklearn-1.5", "SKLearn", "1.5"),
    ("AzureML-Scikit-learn-0.20.3", "SKLearn", "0.20"),
    ("AzureML-Minimal", None, None),
    ("AzureML-Tutorial", None, None),
])
def test_curated_names_parse_into_their_family(name, framework, version):
    family, wanted = curated.family_of(name)
    assert family.framework == framework and wanted == version


def test_names_outside_the_curated_families_are_not_curated():
    assert not curated.is_curated("my-env") and not curated.is_curated("AzureML-AutoML")


def test_run_configuration_communicators_become_distributed_configs():
    from runyard.config import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
    from runyard.errors import ConfigError

    rc = RunConfiguration()
    assert rc.distributed_config() is None
    rc.node_count, rc.communicator = 2, "IntelMpi"
    rc.mpi.process_count_per_node = 3
    assert rc.distributed_config() == MpiConfiguration(process_count_per_node=3, node_count=2)
    rc.communicator = "ParameterServer"
    rc.tensorflow.worker_count, rc.tensorflow.parameter_server_count = 3, 1
    assert rc.distributed_config() == TensorflowConfiguration(3, 1, node_count=2)
    rc.communicator = "Gloo"
    assert rc.distributed_config() == PyTorchConfiguration("Gloo", 2, 2)
    rc.communicator = "None"
    with pytest.raises(ConfigError, match="needs a communicator"):
        rc.distributed_config()
    rc.communicator = "Carrier pigeon"
    with pytest.raises(ConfigError, match="communicator must be one of"):
        rc.distributed_config()


def test_conda_dependencies_azure_methods(tmp_path):
    from runyard import CondaDependencies

    cd = CondaDependencies.create(pip_packages=["azureml-defaults", "pillow"], conda_packages=["scikit-learn"])
    cd.add_tensorflow_conda_package(core_type="cpu", version="2.21")
    cd.add_conda_package("numpy")
    path = cd.save_to_file(str(tmp_path / "env"), conda_file_path="myenv.yml")
    again = CondaDependencies(path)
    assert again.pip_packages == ["azureml-defaults", "pillow", "tensorflow-cpu==2.21.*"]
    assert again.conda_packages == ["scikit-learn", "numpy"]
    assert "tensorflow-cpu==2.21.*" in cd.serialize_to_string()
    assert CondaDependencies.create().save_to_file(str(tmp_path)).endswith("conda_dependencies.yml")
