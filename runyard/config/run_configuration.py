"""Azure ML's ``RunConfiguration`` and ``DockerConfiguration``: the older way to say where and how a script runs.

    run_config = RunConfiguration()
    run_config.target = "cpu-cluster"
    run_config.environment.python.user_managed_dependencies = False
    run_config.environment.python.conda_dependencies = CondaDependencies.create(conda_packages=["scikit-learn"])
    run_config.environment.docker.enabled = True; run_config.environment.docker.base_image = DEFAULT_CPU_IMAGE
    src = ScriptRunConfig(source_directory=".", script="train.py", run_config=run_config)

A ``ScriptRunConfig`` keeps its settings in one of these (``src.run_config.target = ...`` works as in Azure).
Azure's default images (``DEFAULT_CPU_IMAGE``, ``DEFAULT_GPU_IMAGE``, anything under ``mcr.microsoft.com/azureml/``)
hold only the operating system, conda and MPI that Azure's compute needed; runyard runs such environments without a
container (with a notice), so notebooks that enable Docker with them run as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runyard.config.conda_dependencies import CondaDependencies
from runyard.config.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from runyard.config.environment import Environment
from runyard.config.job import argument_list
from runyard.errors import ConfigError, warn

AZURE_IMAGE_PREFIX = "mcr.microsoft.com/azureml/"
DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"
MPI_CPU_IMAGE, MPI_GPU_IMAGE = DEFAULT_CPU_IMAGE, DEFAULT_GPU_IMAGE


def is_azure_base_image(image: str | None) -> bool:
    """An image of Azure's compute (OS, conda, MPI): runyard runs without it instead of pulling it."""
    return bool(image) and str(image).startswith(AZURE_IMAGE_PREFIX)


@dataclass
class DockerConfiguration:
    """``ScriptRunConfig(..., docker_runtime_config=DockerConfiguration(use_docker=True))``: run in the environment's
    ``docker.base_image`` (needs a Docker engine, unless the image is one of Azure's base images)."""

    use_docker: bool = False
    arguments: list[str] | None = None
    shared_volumes: bool = True
    shm_size: str | None = None
    memory: str | None = None  # runyard's: each container's memory limit ("512m", "4g")
    cpus: float | None = None  # runyard's: each container's CPU limit


# Azure's communicator/framework strings → runyard's distributed configurations.
_COMMUNICATORS = {"none": None, "intelmpi": "mpi", "openmpi": "mpi", "mpi": "mpi", "parameterserver": "ps",
                  "gloo": "gloo", "nccl": "nccl"}


class RunConfiguration:
    """Where a script runs (``target``), in which ``environment``, and how many processes (``node_count``,
    ``communicator`` with ``mpi`` / ``tensorflow`` / ``pytorch``). ``auto_prepare_environment`` and the history
    settings are accepted as in Azure (runyard always prepares the environment and keeps the history)."""

    def __init__(self, script: str | None = None, arguments: list[Any] | None = None, framework: str = "Python",
                 communicator: str = "None", conda_dependencies: CondaDependencies | None = None,
                 _history_enabled: bool = True, _path: str | None = None, _name: str | None = None) -> None:
        self.script = script
        self.arguments = argument_list(arguments or [])
        self.target: Any = "local"
        self.framework = framework
        self.communicator = communicator
        self.environment = Environment("runconfig")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.node_count = 1
        self.max_run_duration_seconds: float | None = None
        self.auto_prepare_environment = True
        self.history = {"output_collection": True, "directories_to_watch": ["logs"]}
        self.mpi = MpiConfiguration()
        self.tensorflow = TensorflowConfiguration()
        self.pytorch = PyTorchConfiguration()
        self.docker = DockerConfiguration()
        self.data_references: dict[str, Any] = {}  # accepted; give datastore paths as arguments or inputs
        self.data: dict[str, Any] = {}  # name → dataset.as_named_input(name)…: inputs of the run
        self.environment_variables: dict[str, str] = {}
        self.name = _name

    def distributed_config(self) -> Any:
        """The distributed configuration ``communicator`` (or ``framework``) names, with ``node_count``."""
        kind = _COMMUNICATORS.get(str(self.communicator or "none").replace("_", "").lower(), "unknown")
        if kind == "unknown":
            raise ConfigError(f"run_config.communicator must be one of None, IntelMpi, ParameterServer, Gloo or Nccl, "
                              f"got {self.communicator!r}")
        if kind is None and str(self.framework).lower() == "tensorflow" and self.tensorflow.worker_count > 1:
            kind = "ps"
        if kind == "mpi":
            from dataclasses import replace

            return replace(self.mpi, node_count=self.node_count)
        if kind == "ps":
            from dataclasses import replace

            return replace(self.tensorflow, node_count=self.node_count)
        if kind in ("gloo", "nccl"):
            return PyTorchConfiguration(kind.capitalize(), self.pytorch.process_count or self.node_count,
                                        self.node_count)
        if self.node_count > 1:
            raise ConfigError(f"run_config.node_count={self.node_count} needs a communicator "
                              "(IntelMpi, ParameterServer, Gloo or Nccl) or a distributed_job_config")
        return None

    def effective_environment(self, docker: DockerConfiguration | None = None) -> Environment:
        """The environment with ``docker_runtime_config`` / ``run_config.docker`` applied and the run config's
        variables added."""
        if not isinstance(self.environment, Environment):
            return self.environment  # build_job names what it should be
        env = self.environment.clone()
        explicit = docker is not None or self.docker.use_docker
        docker = docker or self.docker
        if docker.use_docker:
            env.docker.enabled = True
            if docker.arguments:
                env.docker.arguments = list(docker.arguments)
            for name in ("shm_size", "memory", "cpus"):
                if getattr(docker, name):
                    setattr(env.docker, name, getattr(docker, name))
        elif explicit and env.docker.enabled:
            warn(f"DockerConfiguration(use_docker=False) wins over environment {env.name!r}'s docker.enabled=True: "
                 "the run does not use a container")
            env.docker.enabled = False
        elif not env.docker.enabled and env.docker.base_image and not is_azure_base_image(env.docker.base_image):
            warn(f"environment {env.name!r} names docker base image {env.docker.base_image!r} but Docker is off, so "
                 "the run does not use it — pass docker_runtime_config=DockerConfiguration(use_docker=True) to run "
                 "in it")
        if env.docker.enabled and not (env.docker.base_image or env.docker.base_dockerfile):
            env.docker.base_image = DEFAULT_CPU_IMAGE
        if self.environment_variables:
            env.environment_variables = {**env.environment_variables, **self.environment_variables}
        return env

    def __repr__(self) -> str:
        return (f"RunConfiguration(target={getattr(self.target, 'name', self.target)!r}, environment="
                f"{self.environment.name!r}, node_count={self.node_count}, communicator={self.communicator!r})")


__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "MPI_CPU_IMAGE", "MPI_GPU_IMAGE", "DockerConfiguration",
           "RunConfiguration", "is_azure_base_image"]
