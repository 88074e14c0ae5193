"""``ScriptRunConfig``: a script, its arguments, where and in which environment to run it (Azure ML v1 shape)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from runyard.config.environment import Environment
from runyard.config.datapath import resume_arguments
from runyard.config.job import JobSpec, argument_list, build_job
from runyard.config.run_configuration import DockerConfiguration, RunConfiguration
from runyard.errors import ValidationError


class ScriptRunConfig:
    """What to run: ``ScriptRunConfig(source_directory="./proj", script="train.py", arguments=["--lr", 0.01])``.

    Args:
        source_directory: the folder snapshotted and run from (default: the current folder).
        script: the entry script, relative to ``source_directory``.
        arguments: command-line arguments (str/int/float/bool); ``$VAR`` and ``${VAR}`` are expanded in the run's
            environment when it starts. Data references (``ds.path("mnist").as_mount()``,
            ``dataset.as_named_input("train").as_download()``) become paths on the compute when the run starts.
        inputs: more data inputs that are not arguments (the script finds them in ``run.input_datasets``).
        resume_from: a DataPath of checkpoints (``run._get_outputs_datapath()`` of an earlier run, or a datastore
            folder): an input of the run, and ``--resume-from <its local path>`` appended to the arguments (Azure's).
        compute_target: a target name (``"local"``, the default) or a compute target object.
        environment: a runyard ``Environment`` (default: the interpreter that submits the run).
        max_run_duration_seconds: the run is stopped and marked Failed when it runs longer.
        max_run_retries: restart every rank this many times after a failed attempt (a rank's error, a lost node);
            the script resumes from what it saved in ``./outputs`` (kept across attempts).
        distributed_job_config: an MpiConfiguration, TensorflowConfiguration or PyTorchConfiguration.
        run_config: an Azure-style RunConfiguration holding target, environment and counts (``src.run_config``
            always exists; the arguments above override what it holds).
        docker_runtime_config: ``DockerConfiguration(use_docker=True)``: run in the environment's base image.
    """

    def __init__(
        self,
        source_directory: str | os.PathLike | None = None,
        script: str | os.PathLike | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        compute_target: Any = None,
        environment: Any = None,
        distributed_job_config: Any = None,
        max_run_duration_seconds: float | None = None,
        max_run_retries: int = 0,
        inputs: Sequence[Any] | None = None,
        docker_runtime_config: DockerConfiguration | None = None,
        resume_from: Any = None,
        _telemetry_values: Any = None,
    ) -> None:
        if run_config is not None and not isinstance(run_config, RunConfiguration):
            raise ValidationError(f"run_config must be a RunConfiguration, got {type(run_config).__name__}")
        self.source_directory = source_directory if source_directory is not None else "."
        # Azure keeps target, environment and counts in a RunConfiguration: src.run_config.target = ... works too.
        self.run_config = run_config if run_config is not None else RunConfiguration()
        self._placeholder_env = None if run_config is not None else self.run_config.environment
        self.script = script if script is not None else self.run_config.script
        self.arguments = argument_list(arguments) if arguments is not None else list(self.run_config.arguments)
        if compute_target is not None:
            self.run_config.target = compute_target
        if environment is not None:
            self.run_config.environment = environment
        if max_run_duration_seconds is not None:
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
        self.distributed_job_config = distributed_job_config
        self.docker_runtime_config = docker_runtime_config
        self.max_run_retries = max_run_retries
        self.inputs = list(inputs) if inputs else []
        self.resume_from = resume_from
        if resume_from is not None:
            resume_arguments(resume_from)  # a bad value is an error here, not at submit

    @property
    def compute_target(self) -> Any:
        return self.run_config.target

    @compute_target.setter
    def compute_target(self, value: Any) -> None:
        self.run_config.target = value

    @property
    def environment(self) -> Environment | None:
        """The run's environment; None (the submitting interpreter) when neither this nor its run_config names one."""
        env = self.run_config.environment
        if env is self._placeholder_env and self.docker_runtime_config is None:
            return None
        return self.run_config.effective_environment(self.docker_runtime_config)

    @environment.setter
    def environment(self, value: Environment | None) -> None:
        self.run_config.environment = value if value is not None else self._placeholder_env

    @property
    def max_run_duration_seconds(self) -> float | None:
        return self.run_config.max_run_duration_seconds

    @max_run_duration_seconds.setter
    def max_run_duration_seconds(self, value: float | None) -> None:
        self.run_config.max_run_duration_seconds = value

    def to_job_spec(self) -> JobSpec:
        distributed = self.distributed_job_config
        if distributed is None:
            distributed = self.run_config.distributed_config()
        arguments = list(self.arguments)
        if self.resume_from is not None:  # Azure: the checkpoints made available, --resume-from <their path> appended
            arguments += resume_arguments(self.resume_from)
        return build_job(
            source_directory=self.source_directory, entry_script=self.script, arguments=arguments,
            compute_target=self.compute_target, environment=self.environment,
            max_run_duration_seconds=self.max_run_duration_seconds, distributed=distributed,
            max_run_retries=self.max_run_retries, inputs=[*self.inputs, *self.run_config.data.values()],
        )

    def __repr__(self) -> str:
        return (f"ScriptRunConfig(source_directory={os.fspath(self.source_directory)!r}, script={self.script!r}, "
                f"arguments={self.arguments!r}, compute_target={self.compute_target!r})")
