"""``ScriptRunConfig``: a script, its arguments, where and in which environment to run it (Azure ML v1 shape)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from runyard.config.job import JobSpec, build_job


class ScriptRunConfig:
    """What to run: ``ScriptRunConfig(source_directory="./proj", script="train.py", arguments=["--lr", 0.01])``.

    Args:
        source_directory: the folder snapshotted and run from (default: the current folder).
        script: the entry script, relative to ``source_directory``.
        arguments: command-line arguments (str/int/float/bool); ``$VAR`` and ``${VAR}`` are expanded in the run's
            environment when it starts. Data references (``ds.path("mnist").as_mount()``,
            ``dataset.as_named_input("train").as_download()``) become paths on the compute when the run starts.
        inputs: more data inputs that are not arguments (the script finds them in ``run.input_datasets``).
        compute_target: a target name (``"local"``, the default) or a compute target object.
        environment: a runyard ``Environment`` (default: the interpreter that submits the run).
        max_run_duration_seconds: the run is stopped and marked Failed when it runs longer.
        max_run_retries: restart every rank this many times after a failed attempt (a rank's error, a lost node);
            the script resumes from what it saved in ``./outputs`` (kept across attempts).
        distributed_job_config: an MpiConfiguration, TensorflowConfiguration or PyTorchConfiguration.
    """

    def __init__(
        self,
        source_directory: str | os.PathLike | None = None,
        script: str | os.PathLike | None = None,
        arguments: Sequence[Any] | None = None,
        compute_target: Any = None,
        environment: Any = None,
        max_run_duration_seconds: float | None = None,
        distributed_job_config: Any = None,
        max_run_retries: int = 0,
        inputs: Sequence[Any] | None = None,
    ) -> None:
        self.source_directory = source_directory if source_directory is not None else "."
        self.script = script
        self.arguments = list(arguments) if arguments is not None else []
        self.compute_target = compute_target
        self.environment = environment
        self.max_run_duration_seconds = max_run_duration_seconds
        self.distributed_job_config = distributed_job_config
        self.max_run_retries = max_run_retries
        self.inputs = list(inputs) if inputs else []

    def to_job_spec(self) -> JobSpec:
        return build_job(
            source_directory=self.source_directory, entry_script=self.script, arguments=self.arguments,
            compute_target=self.compute_target, environment=self.environment,
            max_run_duration_seconds=self.max_run_duration_seconds, distributed=self.distributed_job_config,
            max_run_retries=self.max_run_retries, inputs=self.inputs,
        )

    def __repr__(self) -> str:
        return (f"ScriptRunConfig(source_directory={os.fspath(self.source_directory)!r}, script={self.script!r}, "
                f"arguments={self.arguments!r}, compute_target={self.compute_target!r})")
