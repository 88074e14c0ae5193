"""``HyperDriveConfig`` (submitted as a parent run of kind "sweep", driven by ``driver.SweepDriver``) and
``HyperDriveRun``."""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from runyard import plugins
from runyard.config.job import JobSpec
from runyard.errors import ConfigError, NotFound, RunyardWarning
from runyard.hyperdrive.policies import EarlyTerminationPolicy, NoTerminationPolicy
from runyard.hyperdrive.sampling import BayesianParameterSampling, _Sampling
from runyard.run import Run
from runyard.submission import RunKind, job_spec_of

if TYPE_CHECKING:
    from runyard.store.metadata.entities import RunInfo
    from runyard.store.workspace_context import WorkspaceContext

RUN_TYPE = "hyperdrive"
RUN_KIND = "sweep"  # what drives it: driver.SweepDriver, registered as plugins.RUN_KINDS "sweep"
PRIMARY_METRIC = "primary_metric_config"  # the run property holding {"name", "goal"} (Azure's)
HYPERPARAMETERS_TAG = "hyperparameters"  # each trial's configuration, as JSON (Azure's tag of the same name)
STOPPED_BY_TAG = "runyard.early_termination"  # why a policy stopped a trial
RESUMED_TAG = "runyard.resumed_from"  # the earlier trial (resume_child_runs) a trial started from


class PrimaryMetricGoal(str, Enum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class HyperDriveConfig:
    """A sweep: trials of ``run_config`` (a ScriptRunConfig or an estimator, any target, any distributed mode) with
    the sampled parameters appended to (or replacing) its arguments.

    Args:
        run_config / estimator: what each trial runs.
        hyperparameter_sampling: RandomParameterSampling, GridParameterSampling or BayesianParameterSampling.
        primary_metric_name, primary_metric_goal: the metric trials log with ``run.log`` and whether more is better.
        max_total_runs: trials in all (fewer when a grid or a finite space is smaller).
        max_concurrent_runs: trials at once (default: all of them); more than max_total_runs is clamped.
        max_duration_minutes: the sweep stops (its running trials are canceled) after this long.
        policy: an early termination policy (None: no termination).
        resume_from: earlier sweeps (their runs or ids) whose trials count as already run (warm start).
        resume_child_runs: earlier trials (runs or ids) to run again first, each with its own configuration and
            ``--resume-from`` its own outputs (its checkpoints); they count as already run too, and toward
            max_total_runs.
    """

    def __init__(self, hyperparameter_sampling: _Sampling, primary_metric_name: str,
                 primary_metric_goal: PrimaryMetricGoal | str, max_total_runs: int,
                 max_concurrent_runs: int | None = None, max_duration_minutes: float = 10080,
                 policy: EarlyTerminationPolicy | None = None, estimator: Any = None, run_config: Any = None,
                 resume_from: Sequence[Any] | None = None, resume_child_runs: Sequence[Any] | None = None) -> None:
        if (run_config is None) == (estimator is None):
            raise ConfigError("HyperDriveConfig needs exactly one of run_config= or estimator=")
        if not isinstance(hyperparameter_sampling, _Sampling):
            raise ConfigError("hyperparameter_sampling must be RandomParameterSampling, GridParameterSampling or "
                              f"BayesianParameterSampling, got {type(hyperparameter_sampling).__name__}")
        if not isinstance(primary_metric_name, str) or not primary_metric_name.strip():
            raise ConfigError("primary_metric_name must name the metric the trials log, e.g. 'validation_acc'")
        try:
            goal = PrimaryMetricGoal(primary_metric_goal.value if isinstance(primary_metric_goal, Enum)
                                     else str(primary_metric_goal).upper())
        except ValueError:
            raise ConfigError(f"primary_metric_goal must be MAXIMIZE or MINIMIZE, got {primary_metric_goal!r}") from None
        for name, value in (("max_total_runs", max_total_runs), ("max_concurrent_runs", max_concurrent_runs)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        if not (isinstance(max_duration_minutes, (int, float)) and math.isfinite(max_duration_minutes)
                and max_duration_minutes > 0):
            raise ConfigError(f"max_duration_minutes must be a positive number, got {max_duration_minutes!r}")
        policy = policy or NoTerminationPolicy()
        if not isinstance(policy, EarlyTerminationPolicy):
            raise ConfigError(f"policy must be an early termination policy, got {type(policy).__name__}")
        if isinstance(hyperparameter_sampling, BayesianParameterSampling) and not isinstance(policy, NoTerminationPolicy):
            raise ConfigError(f"Bayesian sampling learns from complete trials: it takes no early termination policy "
                              f"(got {policy.name}); use NoTerminationPolicy or random/grid sampling")
        size = hyperparameter_sampling.size()
        if size is not None and size < max_total_runs:
            warnings.warn(f"the parameter space has {size} configuration(s): the sweep runs {size} trial(s), not "
                          f"max_total_runs={max_total_runs}", RunyardWarning, stacklevel=2)
            max_total_runs = size
        if max_concurrent_runs is None:
            max_concurrent_runs = max_total_runs
        elif max_concurrent_runs > max_total_runs:
            warnings.warn(f"max_concurrent_runs={max_concurrent_runs} is more than max_total_runs={max_total_runs}: "
                          f"clamped to {max_total_runs}", RunyardWarning, stacklevel=2)
            max_concurrent_runs = max_total_runs
        self.run_config = run_config if run_config is not None else estimator
        self.hyperparameter_sampling = hyperparameter_sampling
        self.primary_metric_name = primary_metric_name.strip()
        self.primary_metric_goal = goal
        self.max_total_runs = max_total_runs
        self.max_concurrent_runs = max_concurrent_runs
        self.max_duration_minutes = float(max_duration_minutes)
        self.policy = policy
        self.resume_from = [_run_id(r) for r in resume_from or ()]
        self.resume_child_runs = [_run_id(r) for r in resume_child_runs or ()]

    def to_dict(self) -> dict[str, Any]:
        """The sweep's settings (its primary metric is recorded once, as the run property ``primary_metric_config``)."""
        return {"sampling": self.hyperparameter_sampling.to_dict(), "policy": self.policy.to_dict(),
                "max_total_runs": self.max_total_runs, "max_concurrent_runs": self.max_concurrent_runs,
                "max_duration_minutes": self.max_duration_minutes, "resume_from": self.resume_from,
                "resume_child_runs": self.resume_child_runs}

    def to_job_spec(self) -> JobSpec:
        """What each trial runs (validated as any submission: a bad trial configuration fails before anything is
        stored; the trials consume the inputs bound for the sweep)."""
        return job_spec_of(self.run_config)

    def run_kind(self, workspace: "WorkspaceContext") -> RunKind:
        """How the sweep is submitted: a parent run of type hyperdrive, driven by the sweep driver."""
        for run_id in self.resume_from + self.resume_child_runs:
            try:
                workspace.metadata.get_run(run_id)
            except NotFound:
                raise ConfigError(f"resume_from / resume_child_runs: no run {run_id!r} in this workspace") from None
        for run_id in self.resume_child_runs:
            if not workspace.metadata.list_artifacts(run_id, "outputs"):
                raise ConfigError(f"resume_child_runs: run {run_id} stored no files under outputs/, so there is no "
                                  "checkpoint to resume it from (leave it to resume_from to learn from its result)")
        settings = self.to_dict()
        metric = {"name": self.primary_metric_name, "goal": self.primary_metric_goal.value}
        return RunKind(RUN_KIND, RUN_TYPE, extra={"hyperdrive": settings},
                       definition={"hyperdrive": settings}, properties={PRIMARY_METRIC: json.dumps(metric)})


def primary_metric(info: "RunInfo") -> tuple[str, bool]:
    """(name, maximize) of a sweep's primary metric, from its run record — read the same way by the driver,
    ``HyperDriveRun`` and the studio."""
    raw = info.properties.get(PRIMARY_METRIC)
    if raw:
        metric = json.loads(raw)
        return metric["name"], str(metric["goal"]).upper() == "MAXIMIZE"
    legacy = (info.definition or {}).get("hyperdrive") or {}  # a sweep recorded before the property held it alone
    return legacy["primary_metric_name"], legacy.get("primary_metric_goal", "MAXIMIZE") == "MAXIMIZE"


class HyperDriveRunConfig(HyperDriveConfig):
    """The 2018–2019 SDK's name for a sweep of an estimator (``HyperDriveRunConfig(estimator=est, ...)``)."""

    def __init__(self, estimator: Any = None, hyperparameter_sampling: _Sampling = None,
                 policy: EarlyTerminationPolicy | None = None, primary_metric_name: str = "",
                 primary_metric_goal: PrimaryMetricGoal | str = "MAXIMIZE", max_total_runs: int = 1,
                 max_concurrent_runs: int | None = None, max_duration_minutes: float = 10080,
                 run_config: Any = None) -> None:
        super().__init__(hyperparameter_sampling, primary_metric_name, primary_metric_goal, max_total_runs,
                         max_concurrent_runs, max_duration_minutes, policy, estimator=estimator, run_config=run_config)


def _run_id(ref: Any) -> str:
    return ref if isinstance(ref, str) else getattr(ref, "id")


def apply_parameters(arguments: Sequence[str], params: Mapping[str, Any]) -> tuple[str, ...]:
    """The trial's arguments: each sampled ``--flag value`` replaces the same flag in ``arguments`` or is appended."""
    args = list(arguments)
    for flag, value in params.items():
        text = str(value)
        if flag in args:
            i = args.index(flag)
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                args[i + 1] = text
            else:
                args.insert(i + 1, text)
        elif any(a.startswith(flag + "=") for a in args):
            args = [f"{flag}={text}" if a.startswith(flag + "=") else a for a in args]
        else:
            args += [flag, text]
    return tuple(args)


def history_of(ws, run_ids: Iterable[str], metric: str) -> list[tuple[dict, float | None]]:
    """(configuration, final metric) of trials: the children of sweeps, or single trials, by run id."""
    store = ws.metadata
    trials = []
    for run_id in run_ids:
        info = store.get_run(run_id)
        if info.run_type == RUN_TYPE:
            trials += store.list_runs(parent_run_id=run_id, limit=100000)
        else:
            trials.append(info)
    trials = list({t.run_id: t for t in trials}.values())  # a trial named twice (its sweep and itself) counts once
    finals = final_metrics(store, [t.run_id for t in trials], metric)
    out = []
    for t in trials:
        if HYPERPARAMETERS_TAG in t.tags:
            out.append((json.loads(t.tags[HYPERPARAMETERS_TAG]), finals.get(t.run_id)))
    return out


def metric_series(store, run_ids: Sequence[str], metric: str) -> dict[str, list[float]]:
    """Each run's numeric values of ``metric`` in the order logged."""
    series: dict[str, list[tuple]] = {r: [] for r in run_ids}
    if not run_ids:
        return {}
    for record in store.get_metric_history(list(run_ids), [metric]):
        if isinstance(record.value, (int, float)) and not isinstance(record.value, bool):
            series[record.run_id].append((record.step, record.timestamp, float(record.value)))
    return {r: [v for *_, v in sorted(values)] for r, values in series.items()}


def final_metrics(store, run_ids: Sequence[str], metric: str) -> dict[str, float]:
    return {r: v[-1] for r, v in metric_series(store, run_ids, metric).items() if v}


class HyperDriveRun(Run):
    """The parent run of a sweep: its trials are its children."""

    def _primary_metric(self) -> tuple[str, bool]:
        return primary_metric(self._refresh())

    def get_hyperparameters(self) -> dict[str, dict[str, Any]]:
        """Each trial's configuration, by run id."""
        return {c.id: json.loads(c.get_tags().get(HYPERPARAMETERS_TAG, "{}")) for c in self.get_children()}

    def get_children_sorted_by_primary_metric(self, top: int = 0, reverse: bool = False,
                                              discard_no_metric: bool = False) -> list[dict[str, Any]]:
        """Trials best first (``reverse``: worst first): run_id, hyperparameters, best_primary_metric (the final
        value), status; trials without the metric last (or left out with ``discard_no_metric``)."""
        metric, maximize = self._primary_metric()
        children = self._ws.metadata.list_runs(parent_run_id=self.id, limit=100000)
        finals = final_metrics(self._ws.metadata, [c.run_id for c in children], metric)
        rows = [{"run_id": c.run_id, "hyperparameters": json.loads(c.tags.get(HYPERPARAMETERS_TAG, "{}")),
                 "best_primary_metric": finals.get(c.run_id), "status": c.status.value} for c in children]
        if discard_no_metric:
            rows = [r for r in rows if r["best_primary_metric"] is not None]
        sign = -1 if maximize else 1
        rows.sort(key=lambda r: (r["best_primary_metric"] is None, sign * (r["best_primary_metric"] or 0), r["run_id"]))
        if reverse:
            with_metric = [r for r in rows if r["best_primary_metric"] is not None][::-1]
            rows = with_metric + [r for r in rows if r["best_primary_metric"] is None]
        return rows[:top] if top else rows

    def get_best_run_by_primary_metric(self, include_failed: bool = True, include_canceled: bool = True) -> Run | None:
        """The trial with the best final value of the primary metric (None when no trial logged it)."""
        skip = ({"Failed"} if not include_failed else set()) | ({"Canceled"} if not include_canceled else set())
        for row in self.get_children_sorted_by_primary_metric(discard_no_metric=True):
            if row["status"] not in skip:
                return Run(self.experiment, row["run_id"])
        return None


plugins.register(plugins.RUN_TYPES, RUN_TYPE, HyperDriveRun)  # a stored sweep reads back as a HyperDriveRun
