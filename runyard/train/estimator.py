"""``Estimator``: the Azure ML v1 way to describe a training job (``script_params`` instead of ``arguments``)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.config.job import JobSpec, build_job


class Estimator:
    """``Estimator(source_directory="./proj", entry_script="train.py", script_params={"--lr": 0.01})``.

    Args:
        source_directory: the folder snapshotted and run from.
        compute_target: a target name (``"local"``, the default) or a compute target object.
        entry_script: the script to run, relative to ``source_directory``.
        script_params: ``{option: value}``; a key without a leading dash gets ``--``; a value of None is a flag.
        arguments: a plain argument list instead of ``script_params`` (not both).
        use_gpu: the run needs a GPU (the local target then queues it on a GPU slot).
        environment_definition: a runyard ``Environment`` (default: the interpreter that submits the run).
        max_run_duration_seconds: the run is stopped and marked Failed when it runs longer.
    """

    def __init__(
        self,
        source_directory: str | os.PathLike,
        *,
        compute_target: Any = None,
        entry_script: str | os.PathLike | None = None,
        script_params: Mapping[str, Any] | None = None,
        arguments: Sequence[Any] | None = None,
        use_gpu: bool = False,
        environment_definition: Any = None,
        max_run_duration_seconds: float | None = None,
    ) -> None:
        self.source_directory = source_directory
        self.compute_target = compute_target
        self.entry_script = entry_script
        self.script_params = dict(script_params) if script_params else {}
        self.arguments = list(arguments) if arguments else []
        self.use_gpu = use_gpu
        self.environment_definition = environment_definition
        self.max_run_duration_seconds = max_run_duration_seconds

    def to_job_spec(self) -> JobSpec:
        return build_job(
            source_directory=self.source_directory, entry_script=self.entry_script, arguments=self.arguments,
            script_params=self.script_params, compute_target=self.compute_target,
            environment=self.environment_definition, use_gpu=self.use_gpu,
            max_run_duration_seconds=self.max_run_duration_seconds,
        )

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(source_directory={os.fspath(self.source_directory)!r}, "
                f"entry_script={self.entry_script!r}, script_params={self.script_params!r})")
