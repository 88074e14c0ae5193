"""``runyard sweep``: hyperparameter sweeps from a YAML file, their leaderboard, cancel.

A sweep file::

    experiment: digits
    source_directory: .          # relative to the file
    script: train.py
    arguments: [--epochs, 3]
    compute: local
    environment: digits-env:2    # optional: a registered environment
    sampling:
      type: random               # random | grid | bayesian
      seed: 1
      parameters:
        --learning-rate: loguniform(-6, -1)
        --batch-size: choice(25, 50, 100)
    policy:                      # optional: bandit | median | truncation | none
      type: bandit
      evaluation_interval: 2
      slack_factor: 0.1
      delay_evaluation: 2
    primary_metric: {name: validation_acc, goal: maximize}
    max_total_runs: 20
    max_concurrent_runs: 4
    max_duration_minutes: 60
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from runyard.cli.common import app, console, current_workspace, friendly
from runyard.errors import ConfigError

sweep_app = typer.Typer(help="Hyperparameter sweeps: submit (from a YAML file), show (a leaderboard), cancel.",
                        no_args_is_help=True)
app.add_typer(sweep_app, name="sweep")

_SAMPLINGS = {"random": "RandomParameterSampling", "grid": "GridParameterSampling", "bayesian": "BayesianParameterSampling"}
_POLICIES = {"bandit": "BanditPolicy", "median": "MedianStoppingPolicy", "truncation": "TruncationSelectionPolicy",
             "none": "NoTerminationPolicy"}
_KEYS = {"experiment", "source_directory", "script", "arguments", "compute", "environment", "sampling", "policy",
         "primary_metric", "max_total_runs", "max_concurrent_runs", "max_duration_minutes"}


def load_sweep(ws, path: Path) -> tuple[str, Any]:
    """(experiment name, HyperDriveConfig) from a sweep file; every mistake is a ConfigError naming the key."""
    import yaml

    from runyard import hyperdrive
    from runyard.config.environment import Environment
    from runyard.hyperdrive.expressions import parse
    from runyard.train.estimator import Estimator

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the sweep file {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping (script:, sampling:, primary_metric: …)")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KEYS))}")
    for key in ("script", "sampling", "primary_metric", "max_total_runs"):
        if key not in spec:
            raise ConfigError(f"{path}: {key}: is missing")
    sampling = spec["sampling"] or {}
    kind = str(sampling.get("type", "random")).lower()
    if kind not in _SAMPLINGS:
        raise ConfigError(f"{path}: sampling.type must be one of {', '.join(_SAMPLINGS)}, got {kind!r}")
    parameters = sampling.get("parameters") or {}
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError(f"{path}: sampling.parameters must map each flag to an expression, e.g. --lr: uniform(0, 1)")
    space = {name: parse(str(text)) for name, text in parameters.items()}
    sampler = getattr(hyperdrive, _SAMPLINGS[kind])(space, seed=sampling.get("seed"))
    policy = None
    if spec.get("policy"):
        options = dict(spec["policy"])
        pkind = str(options.pop("type", "none")).lower()
        if pkind not in _POLICIES:
            raise ConfigError(f"{path}: policy.type must be one of {', '.join(_POLICIES)}, got {pkind!r}")
        try:
            policy = getattr(hyperdrive, _POLICIES[pkind])(**options)
        except TypeError as exc:
            raise ConfigError(f"{path}: policy: {exc}") from None
    metric = spec["primary_metric"]
    if not isinstance(metric, dict) or "name" not in metric:
        raise ConfigError(f"{path}: primary_metric needs name: and goal: (maximize or minimize)")
    env = None
    if spec.get("environment"):
        name, _, version = str(spec["environment"]).partition(":")
        env = Environment.get(ws, name, version or None)
    source = (path.parent / str(spec.get("source_directory", "."))).resolve()
    estimator = Estimator(str(source), entry_script=spec["script"], arguments=list(spec.get("arguments") or []),
                          compute_target=spec.get("compute", "local"), environment_definition=env)
    config = hyperdrive.HyperDriveConfig(
        run_config=estimator, hyperparameter_sampling=sampler, policy=policy, primary_metric_name=metric["name"],
        primary_metric_goal=str(metric.get("goal", "maximize")), max_total_runs=spec["max_total_runs"],
        max_concurrent_runs=spec.get("max_concurrent_runs"),
        max_duration_minutes=spec.get("max_duration_minutes", 10080))
    return str(spec.get("experiment") or source.name), config


@sweep_app.command("submit")
@friendly
def sweep_submit(
    file: Path = typer.Argument(..., help="The sweep's YAML file."),
    wait: bool = typer.Option(False, "--wait", help="Stream the sweep's progress until it ends."),
) -> None:
    """Submit a sweep; it runs detached (the command may exit)."""
    from runyard.experiment import Experiment

    ws = current_workspace()
    experiment, config = load_sweep(ws, file)
    run = Experiment(ws, experiment).submit(config)
    console.print(f"submitted sweep [bold]{run.id}[/bold] ({config.max_total_runs} trials) to experiment "
                  f"{experiment}", highlight=False)
    if wait:
        run.wait_for_completion(show_output=True, raise_on_error=False)
        _leaderboard(run)


@sweep_app.command("show")
@friendly
def sweep_show(run_id: str = typer.Argument(..., help="The sweep's run id."),
               top: int = typer.Option(0, "--top", "-n", min=0, help="Only the best N trials (0: all).")) -> None:
    """The leaderboard: trials best first with their parameters, primary metric and status."""
    _leaderboard(_sweep(run_id), top)


@sweep_app.command("cancel")
@friendly
def sweep_cancel(run_id: str = typer.Argument(..., help="The sweep's run id.")) -> None:
    """Cancel the sweep and every running trial."""
    run = _sweep(run_id)
    run.cancel()
    console.print(f"sweep {run.id}: {run.get_status()}", highlight=False)


def _sweep(run_id: str):
    from runyard.hyperdrive import HyperDriveRun
    from runyard.hyperdrive.config import RUN_TYPE

    run = current_workspace().get_run(run_id)
    if run.type != RUN_TYPE:
        raise ConfigError(f"run {run_id} is not a sweep (its type is {run.type})")
    return HyperDriveRun(run.experiment, run.id)


def _leaderboard(run, top: int = 0) -> None:
    metric, maximize = run._primary_metric()
    rows = run.get_children_sorted_by_primary_metric(top=top)
    names = sorted({k for r in rows for k in r["hyperparameters"]})
    table = Table("#", "run", "status", metric, *names,
                  title=f"sweep {run.id}: {run.get_status()}, {len(rows)} trial(s), "
                        f"{'maximize' if maximize else 'minimize'} {metric}")
    for i, r in enumerate(rows, 1):
        value = r["best_primary_metric"]
        table.add_row(str(i), r["run_id"], r["status"], "" if value is None else f"{value:.6g}",
                      *(json.dumps(r["hyperparameters"].get(n)) for n in names))
    console.print(table)
