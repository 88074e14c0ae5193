"""Framework estimators for deep learning: ``TensorFlow`` and ``PyTorch`` (Azure ML v1's ``azureml.train.dnn``).

    TensorFlow(source_directory="./tf", entry_script="train.py", framework_version="2.21", pip_packages=["matplotlib"])
    PyTorch(source_directory="./pt", entry_script="train.py", framework_version="2.13", use_gpu=False)
    Chainer(...)   # Python <= 3.8 only: in a container image that has it (custom_docker_image=..., user_managed=True)

Each builds (once, then from the cache) an environment with the framework pinned at ``framework_version``
(see ``runyard.train.frameworks``) plus the packages given; ``user_managed=True`` or ``inherit_base_packages=True``
use a framework that is already installed instead.
"""
from __future__ import annotations

from runyard.config.distributed import (  # noqa: F401 - Azure ML's azureml.train.dnn exports these shorthands
    Gloo,
    Mpi,
    Nccl,
    ParameterServer,
)
from runyard.train.estimator import Estimator


class TensorFlow(Estimator):
    """An Estimator whose environment has TensorFlow (``tensorflow-cpu``; ``tensorflow[and-cuda]`` with use_gpu)."""

    framework_name = "TensorFlow"


class PyTorch(Estimator):
    """An Estimator whose environment has PyTorch (a CPU-only build unless use_gpu; a local wheel when one exists)."""

    framework_name = "PyTorch"


class Chainer(Estimator):
    """Azure's Chainer estimator. Chainer's releases run on Python <= 3.8 with NumPy 1 only: an environment built on
    a newer Python is refused at submit, naming the way out (a container image that has Chainer, user_managed)."""

    framework_name = "Chainer"


__all__ = ["Chainer", "Gloo", "Mpi", "Nccl", "ParameterServer", "PyTorch", "TensorFlow"]
