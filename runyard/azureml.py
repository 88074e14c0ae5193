"""Azure ML's module tree, mapped onto runyard's modules (what ``runyard migrate`` rewrites imports with).

``from azureml.core.compute import ComputeTarget, AmlCompute`` becomes ``from runyard.compute import ComputeTarget,
AmlCompute``: every name an Azure module exports that notebooks use is importable from the runyard module it maps to.

``import azureml.core`` becomes ``from runyard import azureml`` (this module), so code that goes on to write
``azureml.core.VERSION`` or ``azureml.train.dnn.TensorFlow`` works unchanged: attribute chains resolve through the
same table.
"""
from __future__ import annotations

import importlib
from typing import Any

# Azure module → the runyard module holding the same names.
MODULES: dict[str, str] = {
    "azureml.core": "runyard",
    "azureml.core.workspace": "runyard.workspace",
    "azureml.core.authentication": "runyard.workspace",
    "azureml.core.experiment": "runyard.experiment",
    "azureml.core.run": "runyard.run",
    "azureml.core.script_run": "runyard.run",
    "azureml.core.script_run_config": "runyard.config",
    "azureml.core.runconfig": "runyard.config",
    "azureml.core.environment": "runyard.config",
    "azureml.core.conda_dependencies": "runyard.config.conda_dependencies",
    "azureml.core.compute": "runyard.compute",
    "azureml.core.compute_target": "runyard.compute",
    "azureml.core.model": "runyard.model",
    "azureml.core.resource_configuration": "runyard.model",
    "azureml.core.webservice": "runyard.deploy",
    "azureml.core.image": "runyard.deploy",
    "azureml.core.dataset": "runyard.data",
    "azureml.core.datastore": "runyard.data",
    "azureml.data": "runyard.data",
    "azureml.data.data_reference": "runyard.data",
    "azureml.data.datapath": "runyard.data",
    "azureml.exceptions": "runyard.errors",
    "azureml.train.estimator": "runyard.train.estimator",
    "azureml.train.dnn": "runyard.train.dnn",
    "azureml.train.sklearn": "runyard.train.sklearn",
    "azureml.train.hyperdrive": "runyard.hyperdrive",
    "azureml.train.hyperdrive.runconfig": "runyard.hyperdrive",
    "azureml.train.hyperdrive.parameter_expressions": "runyard.hyperdrive",
    "azureml.train.hyperdrive.sampling": "runyard.hyperdrive",
    "azureml.train.hyperdrive.policy": "runyard.hyperdrive",
    "azureml.train.hyperdrive.run": "runyard.hyperdrive",
    "azureml.widgets": "runyard.widgets",
    "azureml.tensorboard": "runyard.tensorboard",
    "azureml.tensorboard.export": "runyard.tensorboard.export",
    "azureml.telemetry": "runyard",
}


def runyard_module(azure_module: str) -> str | None:
    """The runyard module standing for ``azure_module`` (None: runyard has no counterpart)."""
    return MODULES.get(azure_module)


def has_name(runyard_module_name: str, name: str) -> bool:
    """Whether ``from <runyard_module_name> import <name>`` works."""
    try:
        return hasattr(importlib.import_module(runyard_module_name), name)
    except ImportError:
        return False


class AzureNamespace:
    """``azureml.<path>`` after ``from runyard import azureml``: submodules are namespaces, other names come from
    the runyard module the path maps to."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        full = f"{self._path}.{name}"
        if full in MODULES or any(m.startswith(full + ".") for m in MODULES):
            return AzureNamespace(full)
        target = MODULES.get(self._path)
        if target is None:
            raise AttributeError(f"runyard has no counterpart of {full}")
        return getattr(importlib.import_module(target), name)

    def __repr__(self) -> str:
        return f"<{self._path}, mapped by runyard to {MODULES.get(self._path, 'its submodules')}>"


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(AzureNamespace("azureml"), name)


__all__ = ["MODULES", "AzureNamespace", "has_name", "runyard_module"]
