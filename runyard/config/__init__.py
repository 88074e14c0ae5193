"""Job specs (pure data): run configurations and environments, each validated into one frozen ``JobSpec``."""
from runyard.config.conda_dependencies import CondaDependencies
from runyard.config.distributed import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration
from runyard.config.environment import DockerSection, Environment, PythonSection
from runyard.config.job import JobSpec, build_job
from runyard.config.script_run_config import ScriptRunConfig

__all__ = ["CondaDependencies", "DockerSection", "Environment", "MpiConfiguration", "PyTorchConfiguration",
           "TensorflowConfiguration", "JobSpec", "PythonSection", "ScriptRunConfig", "build_job"]
