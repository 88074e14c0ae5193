"""``JobSpec``: what the user asked to run, validated and frozen. Every run configuration becomes one.

Compute targets receive a JobSpec; a job is ``node_count`` nodes × ``process_count_per_node`` processes, and a
launcher (``runyard/launchers``) turns it into each process's command and environment.
"""
from __future__ import annotations

import difflib
import math
import numbers
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError, NotFound, ValidationError


@dataclass(frozen=True)
class JobSpec:
    """A validated job. Build one with :func:`build_job` (or a run configuration's ``to_job_spec()``)."""

    source_directory: str  # absolute path
    entry_script: str  # posix path relative to source_directory
    arguments: tuple[str, ...] = ()  # $VAR / ${VAR} are expanded in the run's environment when it starts
    compute_target: str = "local"
    environment: Mapping[str, Any] = field(default_factory=dict)  # Environment.to_spec()
    node_count: int = 1
    process_count_per_node: int = 1
    distributed: Mapping[str, Any] | None = None  # launcher name and options; None: one plain process
    use_gpu: bool = False
    max_run_duration_seconds: float | None = None
    run_type: str = "script"
    max_run_retries: int = 0  # a failed attempt (a rank's error, a lost node) restarts every rank this many times
    inputs: tuple[Mapping[str, Any], ...] = ()  # data inputs (runyard.data.inputs): datastore paths and datasets

    def __post_init__(self) -> None:
        for name in ("node_count", "process_count_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.distributed is None and self.world_size > 1:
            raise ConfigError(
                f"node_count={self.node_count} × process_count_per_node={self.process_count_per_node} needs a "
                "distributed backend (MPI, TensorFlow parameter server or PyTorch) to start the processes"
            )
        if self.distributed is not None:
            from runyard.config.distributed import check_section

            check_section(self.distributed, self.node_count, self.process_count_per_node)
        duration = self.max_run_duration_seconds
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, numbers.Real)
                                     or not math.isfinite(duration) or duration <= 0):
            raise ValidationError(f"max_run_duration_seconds must be a positive number of seconds, got {duration!r}")
        retries = self.max_run_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError(f"max_run_retries must be a whole number >= 0, got {retries!r}")

    @property
    def world_size(self) -> int:
        """Every process of the job: ``node_count × process_count_per_node``."""
        return self.node_count * self.process_count_per_node

    def on_one_node(self) -> "JobSpec":
        """The same job with all its processes on one node (a target that is one machine folds a job's nodes)."""
        return replace(self, node_count=1, process_count_per_node=self.world_size)

    @property
    def interpreter(self) -> str:
        import sys

        return (self.environment.get("python") or {}).get("interpreter_path") or sys.executable

    @property
    def environment_variables(self) -> dict[str, str]:
        return dict(self.environment.get("environment_variables") or {})

    def to_definition(self) -> dict[str, Any]:
        """The JSON stored with the run (``run.get_details()["runDefinition"]``)."""
        return {
            "script": self.entry_script,
            "arguments": list(self.arguments),
            "sourceDirectory": self.source_directory,
            "target": self.compute_target,
            "environment": dict(self.environment),
            "nodeCount": self.node_count,
            "processCountPerNode": self.process_count_per_node,
            "distributed": dict(self.distributed) if self.distributed else None,
            "useGpu": self.use_gpu,
            "maxRunDurationSeconds": self.max_run_duration_seconds,
            "runType": self.run_type,
            "maxRunRetries": self.max_run_retries,
            "inputs": [dict(i) for i in self.inputs],
        }

    @classmethod
    def from_definition(cls, d: Mapping[str, Any]) -> "JobSpec":
        return cls(
            source_directory=d["sourceDirectory"], entry_script=d["script"], arguments=tuple(d["arguments"]),
            compute_target=d["target"], environment=d["environment"], node_count=d["nodeCount"],
            process_count_per_node=d["processCountPerNode"], distributed=d.get("distributed"), use_gpu=d["useGpu"],
            max_run_duration_seconds=d.get("maxRunDurationSeconds"), run_type=d.get("runType", "script"),
            max_run_retries=d.get("maxRunRetries", 0), inputs=tuple(d.get("inputs") or ()),
        )


def build_job(
    *,
    source_directory: str | os.PathLike | None,
    entry_script: str | os.PathLike | None,
    arguments: Sequence[Any] | None = None,
    script_params: Mapping[str, Any] | None = None,
    compute_target: Any = None,
    environment: Any = None,
    use_gpu: bool = False,
    max_run_duration_seconds: float | None = None,
    node_count: int = 1,
    process_count_per_node: int = 1,
    distributed: Any = None,
    distributed_backend: Any = None,
    worker_count: int | None = None,
    parameter_server_count: int | None = None,
    run_type: str = "script",
    max_run_retries: int = 0,
    inputs: Sequence[Any] | None = None,
) -> JobSpec:
    """Validate what a run configuration holds and freeze it; every error names the fix.

    ``distributed``: an MpiConfiguration / TensorflowConfiguration / PyTorchConfiguration (or the launcher section
    itself); ``distributed_backend``: the Estimator's string or object form, with the counts. Data references
    (``ds.path("x").as_mount()``, ``dataset.as_named_input("x").as_download()``) in the arguments, the
    script_params or ``inputs`` become the run's inputs, and ``${RUNYARD_DATA_<name>}`` in the arguments.
    """
    from runyard.config import distributed as dist
    from runyard.config.environment import Environment

    if isinstance(distributed, Mapping):
        section = dict(distributed)
    else:
        node_count, process_count_per_node, section = dist.resolve(
            distributed, distributed_backend=distributed_backend, node_count=node_count,
            process_count_per_node=process_count_per_node, worker_count=worker_count,
            parameter_server_count=parameter_server_count)

    source = _source_directory(source_directory)
    script = _entry_script(source, entry_script)
    if arguments and script_params:
        raise ConfigError("give the script's arguments either as arguments=[...] or as script_params={...}, not both")
    args = script_params_to_arguments(script_params) if script_params else normalize_arguments(arguments or [])
    env = environment if environment is not None else Environment.from_existing_interpreter("current")
    if not isinstance(env, Environment):
        raise ValidationError(f"environment must be a runyard Environment, got {type(env).__name__}")
    if not isinstance(use_gpu, bool):
        raise ValidationError(f"use_gpu must be True or False, got {use_gpu!r}")
    if inputs is not None and (isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence)
                               or not all(hasattr(i, "to_input") for i in inputs)):
        raise ValidationError("inputs must be a list of data references or dataset inputs, e.g. "
                              "[ds.path('mnist').as_mount(), dataset.as_named_input('train').as_download()]")
    return JobSpec(
        source_directory=str(source), entry_script=script, arguments=args, compute_target=_target_name(compute_target),
        environment=env.to_spec(), node_count=node_count, process_count_per_node=process_count_per_node,
        distributed=section, use_gpu=use_gpu, max_run_duration_seconds=max_run_duration_seconds, run_type=run_type,
        max_run_retries=max_run_retries, inputs=collect_inputs(arguments, script_params, inputs),
    )


def collect_inputs(*groups: Any) -> tuple[dict[str, Any], ...]:
    """The data inputs among arguments, script_params values and ``inputs=[...]`` — any value with ``to_input()``
    (a datastore path or dataset input of ``runyard.data``); one name, one input."""
    found: dict[str, dict[str, Any]] = {}
    for group in groups:
        values = group.values() if isinstance(group, Mapping) else (group or [])
        for value in values:
            if not hasattr(value, "to_input"):
                continue
            spec = value.to_input()
            same = found.get(spec["name"])
            if same is not None and same != spec:
                raise ValidationError(f"two different inputs are named {spec['name']!r}; give them distinct names "
                                      "(as_named_input(name) / data_reference_name=)")
            found[spec["name"]] = spec
    return tuple(found.values())


def argument_list(arguments: Sequence[Any] | str) -> list[Any]:
    """The arguments as a list; one string is split as a shell would (``"--lr 0.1 --name 'a b'"``), which is what
    Azure ML users write when they give a command line (its ScriptRunConfig took a list or a str)."""
    if isinstance(arguments, str):
        try:
            return shlex.split(arguments)
        except ValueError as exc:
            raise ValidationError(f"arguments {arguments!r} cannot be split like a command line: {exc}") from None
    if isinstance(arguments, bytes) or not isinstance(arguments, Sequence):
        raise ValidationError(f"arguments must be a list, e.g. ['--lr', 0.01], or a command line string, "
                              f"got {type(arguments).__name__}")
    return list(arguments)


def normalize_arguments(arguments: Sequence[Any] | str) -> tuple[str, ...]:
    """str/int/float/bool arguments become strings (``0.01`` → ``"0.01"``, ``True`` → ``"True"``)."""
    arguments = argument_list(arguments)
    if not isinstance(arguments, Sequence):
        raise ValidationError(f"arguments must be a list, e.g. ['--lr', 0.01], got {type(arguments).__name__}")
    return tuple(_argument(value, f"arguments[{i}]") for i, value in enumerate(arguments))


def script_params_to_arguments(params: Mapping[str, Any]) -> tuple[str, ...]:
    """``{"--lr": 0.01, "epochs": 3, "--verbose": None}`` → ``("--lr", "0.01", "--epochs", "3", "--verbose")``.

    A key without a leading dash gets ``--``; a value of None (or "") passes the key alone, as a flag.
    """
    if not isinstance(params, Mapping):
        raise ValidationError(f"script_params must be a dict of option → value, got {type(params).__name__}")
    out: list[str] = []
    for key, value in params.items():
        if not isinstance(key, str) or not key.strip("-"):
            raise ValidationError(f"script_params keys must be option names such as '--lr', got {key!r}")
        out.append(key if key.startswith("-") else f"--{key}")
        if value is not None and value != "":
            out.append(_argument(value, f"script_params[{key!r}]"))
    return tuple(out)


def _argument(value: Any, where: str) -> str:
    if isinstance(value, str):
        if "\0" in value:
            raise ValidationError(f"{where} contains a NUL character")
        return value
    if isinstance(value, bool) or isinstance(value, numbers.Integral):
        return str(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))  # numpy scalars too: "0.01", never "np.float64(0.01)"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_input"):  # a data reference / dataset input: its path, known when the run starts
        return str(value)
    raise ValidationError(
        f"{where} is a {type(value).__name__}, which cannot be passed on a command line — use a string or a number"
    )


def _source_directory(value: str | os.PathLike | None) -> Path:
    path = Path(value if value is not None else ".").expanduser().absolute()
    if not path.exists():
        raise NotFound(f"source_directory {os.fspath(value or '.')!r} does not exist (resolved to {path})")
    if not path.is_dir():
        raise ConfigError(f"source_directory {os.fspath(value or '.')!r} is a file, not a folder — pass the folder that holds it")
    return path


def _entry_script(source: Path, script: str | os.PathLike | None) -> str:
    if script is None or not os.fspath(script).strip():
        raise ConfigError(f"no entry script given — name the script to run inside {source}, e.g. script='train.py'")
    path = Path(os.fspath(script)).expanduser()
    full = (path if path.is_absolute() else source / path).resolve()
    if full != source.resolve() and source.resolve() not in full.parents:
        raise ConfigError(
            f"entry script {os.fspath(script)!r} is outside source_directory {source} — only the source directory is "
            "snapshotted; move the script into it or choose a source_directory that contains it"
        )
    rel = full.relative_to(source.resolve()).as_posix()
    if not full.is_file():
        hint = _closest_script(source, rel)
        raise NotFound(f"entry script {rel!r} not found in {source}" + (f" — did you mean {hint!r}?" if hint else ""))
    return rel


def _closest_script(source: Path, wanted: str) -> str | None:
    candidates = []
    for root, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")]
        candidates += [Path(root, f).relative_to(source).as_posix() for f in files if f.endswith((".py", ".sh"))]
        if len(candidates) > 5000:
            break
    match = difflib.get_close_matches(wanted, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


def _target_name(target: Any) -> str:
    if target is None:
        return "local"
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(f"compute_target must be a name such as 'local' or a compute target, got {target!r}")
    return name


__all__ = ["JobSpec", "build_job", "collect_inputs", "normalize_arguments", "script_params_to_arguments"]
