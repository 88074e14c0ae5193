"""Job specs (pure data): run configurations and environments, each validated into one frozen ``JobSpec``."""
from runyard.config.conda_dependencies import CondaDependencies
from runyard.config.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from runyard.config.environment import DockerSection, Environment, PythonSection
from runyard.config.job import JobSpec, build_job
from runyard.config.run_configuration import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    MPI_CPU_IMAGE,
    MPI_GPU_IMAGE,
    DockerConfiguration,
    RunConfiguration,
)
from runyard.config.script_run_config import ScriptRunConfig

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "MPI_CPU_IMAGE", "MPI_GPU_IMAGE", "DockerConfiguration",
           "RunConfiguration", "CondaDependencies", "DockerSection", "Environment", "MpiConfiguration", "PyTorchConfiguration",
           "TensorflowConfiguration", "JobSpec", "PythonSection", "ScriptRunConfig", "build_job"]
