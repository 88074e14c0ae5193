"""Job specs (pure data): run configurations and environments, each validated into one frozen ``JobSpec``."""
from runyard.config.environment import Environment, PythonSection
from runyard.config.job import JobSpec, build_job
from runyard.config.script_run_config import ScriptRunConfig

__all__ = ["Environment", "JobSpec", "PythonSection", "ScriptRunConfig", "build_job"]
