"""runyard: self-hosted ML training runs with an Azure ML v1-shaped API.

    from runyard import Workspace, Experiment, Run
    ws = Workspace.from_config()
    run = Experiment(ws, "digits").start_logging()
    run.log("loss", 0.5); run.complete()

    run = Experiment(ws, "digits").submit(ScriptRunConfig(source_directory=".", script="train.py"))
    run.wait_for_completion(show_output=True)
"""
from runyard.config import (
    DockerConfiguration,
    Environment,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    ScriptRunConfig,
    TensorflowConfiguration,
)
from runyard.config.conda_dependencies import CondaDependencies
from runyard.errors import (
    ComputeError,
    ConfigError,
    DataError,
    InvalidStatusTransition,
    NotFound,
    RunFailed,
    RunyardError,
    StoreError,
    ValidationError,
    WorkspaceError,
)
from runyard.experiment import Experiment
from runyard.model import Model, ResourceConfiguration
from runyard.run import OfflineRun, Run
from runyard.status import RunStatus
from runyard.workspace import Workspace

from runyard.version import __version__  # noqa: E402
VERSION = __version__  # azureml.core.VERSION's counterpart
ScriptRun = Run  # Azure's class of submitted script runs


def set_diagnostics_collection(send_diagnostics: bool = True) -> None:
    """Azure ML's telemetry switch (``azureml.telemetry``), accepted and ignored: runyard sends nothing anywhere."""


def __getattr__(name: str):
    """Dataset, Datastore, ComputeTarget and the deployment classes are imported when first used: a training script's
    ``import runyard`` (and every CLI command) stays quick."""
    if name in ("InferenceConfig", "LocalWebservice", "Webservice"):
        import runyard.deploy

        return getattr(runyard.deploy, name)
    if name in ("Dataset", "Datastore"):
        import runyard.data

        return getattr(runyard.data, name)
    if name == "ComputeTarget":
        from runyard.compute import ComputeTarget

        return ComputeTarget
    if name == "Image":
        from runyard.deploy.images import Image

        return Image
    raise AttributeError(f"module 'runyard' has no attribute {name!r}")

__all__ = [
    "VERSION",
    "CondaDependencies",
    "ComputeTarget",
    "DockerConfiguration",
    "Image",
    "RunConfiguration",
    "ScriptRun",
    "set_diagnostics_collection",
    "ComputeError",
    "ConfigError",
    "DataError",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "InferenceConfig",
    "InvalidStatusTransition",
    "LocalWebservice",
    "Webservice",
    "Model",
    "ResourceConfiguration",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "TensorflowConfiguration",
    "NotFound",
    "OfflineRun",
    "Run",
    "RunFailed",
    "RunStatus",
    "RunyardError",
    "ScriptRunConfig",
    "StoreError",
    "ValidationError",
    "Workspace",
    "WorkspaceError",
]
