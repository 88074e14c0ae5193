"""Early termination policies, with Azure ML's definitions. Pure: from the trials' primary-metric series to a verdict.

An *interval* is one logged value of the primary metric: a trial that has logged it ``i`` times is at interval ``i``.
A policy looks at a trial at every interval ``i`` with ``i % evaluation_interval == 0`` and ``i >= delay_evaluation``
(and ``i >= 1``), comparing it with every trial (running or finished) that has reached interval ``i``:

- ``BanditPolicy(slack_factor=s)``: stop when the trial's value at ``i`` is worse than ``best / (1 + s)`` (maximize)
  or ``best * (1 + s)`` (minimize), ``best`` being the best value any trial had at ``i``; ``slack_amount=a``: worse than
  ``best - a`` / ``best + a``.
- ``MedianStoppingPolicy``: stop when the trial's best value so far is worse than the median of the running averages
  (mean of the first ``i`` values) of the trials at ``i``.
- ``TruncationSelectionPolicy(truncation_percentage=p)``: rank the trials at ``i`` by their value at ``i``; stop the trial
  when it is among the worst ``p`` % (``int(n * p / 100)`` of them; with ``exclude_finished_jobs``, finished trials are
  not ranked).
"""
from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from runyard.errors import ConfigError

Series = Mapping[str, Sequence[float]]  # run id → its primary metric values, in the order logged


def _interval(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


class EarlyTerminationPolicy:
    name = "policy"

    def __init__(self, evaluation_interval: int = 1, delay_evaluation: int = 0) -> None:
        self.evaluation_interval = _interval(evaluation_interval, "evaluation_interval", 1)
        self.delay_evaluation = _interval(delay_evaluation, "delay_evaluation", 0)

    def evaluates_at(self, interval: int) -> bool:
        return interval >= max(1, self.delay_evaluation) and interval % self.evaluation_interval == 0

    def verdict(self, run_id: str, interval: int, series: Series, finished: set[str], maximize: bool) -> str | None:
        """Why ``run_id`` should stop at ``interval`` (None: it goes on)."""
        if not self.evaluates_at(interval) or len(series.get(run_id, ())) < interval:
            return None
        return self._verdict(run_id, interval, series, finished, maximize)

    def _verdict(self, run_id: str, interval: int, series: Series, finished: set[str], maximize: bool) -> str | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.name, **{k: v for k, v in vars(self).items()}}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _at(series: Series, interval: int, finished: set[str] | None = None) -> dict[str, float]:
    """Each trial's value at ``interval`` (trials that reached it; without ``finished`` ones when given)."""
    return {r: v[interval - 1] for r, v in series.items() if len(v) >= interval and (finished is None or r not in finished)}


def better(a: float, b: float | None, maximize: bool) -> bool:
    """``a`` is strictly better than ``b`` (anything beats no value)."""
    return b is None or (a > b if maximize else a < b)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


class NoTerminationPolicy(EarlyTerminationPolicy):
    name = "NoTerminationPolicy"


class BanditPolicy(EarlyTerminationPolicy):
    name = "BanditPolicy"

    def __init__(self, evaluation_interval: int = 1, slack_factor: float | None = None,
                 slack_amount: float | None = None, delay_evaluation: int = 0) -> None:
        super().__init__(evaluation_interval, delay_evaluation)
        if (slack_factor is None) == (slack_amount is None):
            raise ConfigError("BanditPolicy needs exactly one of slack_factor or slack_amount")
        for name, value in (("slack_factor", slack_factor), ("slack_amount", slack_amount)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        self.slack_factor, self.slack_amount = slack_factor, slack_amount

    def _verdict(self, run_id, interval, series, finished, maximize):
        values = _at(series, interval)
        best = max(values.values()) if maximize else min(values.values())
        mine = values[run_id]
        if self.slack_factor is not None:
            bound = best / (1 + self.slack_factor) if maximize else best * (1 + self.slack_factor)
            how = f"best {_fmt(best)} {'/' if maximize else '*'} (1 + slack_factor {self.slack_factor:g})"
        else:
            bound = best - self.slack_amount if maximize else best + self.slack_amount
            how = f"best {_fmt(best)} {'-' if maximize else '+'} slack_amount {self.slack_amount:g}"
        if better(bound, mine, maximize):
            return (f"BanditPolicy: {_fmt(mine)} at interval {interval} is {'below' if maximize else 'above'} "
                    f"{_fmt(bound)} ({how})")
        return None


class MedianStoppingPolicy(EarlyTerminationPolicy):
    name = "MedianStoppingPolicy"

    def _verdict(self, run_id, interval, series, finished, maximize):
        averages = [statistics.fmean(v[:interval]) for v in series.values() if len(v) >= interval]
        median = statistics.median(averages)
        values = series[run_id][:interval]
        best = max(values) if maximize else min(values)
        if better(median, best, maximize):
            return (f"MedianStoppingPolicy: best {_fmt(best)} by interval {interval} is worse than the median "
                    f"{_fmt(median)} of the running averages of {len(averages)} trial(s)")
        return None


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    name = "TruncationSelectionPolicy"

    def __init__(self, truncation_percentage: int, evaluation_interval: int = 1, delay_evaluation: int = 0,
                 exclude_finished_jobs: bool = False) -> None:
        super().__init__(evaluation_interval, delay_evaluation)
        if isinstance(truncation_percentage, bool) or not isinstance(truncation_percentage, (int, float)) \
                or not 1 <= truncation_percentage <= 99:
            raise ConfigError(f"truncation_percentage must be between 1 and 99, got {truncation_percentage!r}")
        self.truncation_percentage = truncation_percentage
        self.exclude_finished_jobs = bool(exclude_finished_jobs)

    def _verdict(self, run_id, interval, series, finished, maximize):
        values = _at(series, interval, finished - {run_id} if self.exclude_finished_jobs else None)
        cut = int(len(values) * self.truncation_percentage / 100)
        if cut == 0:
            return None
        ranked = sorted(values, key=lambda r: (values[r], r), reverse=not maximize)  # worst first
        if run_id in ranked[:cut]:
            return (f"TruncationSelectionPolicy: {_fmt(values[run_id])} at interval {interval} is among the worst "
                    f"{self.truncation_percentage:g}% ({cut} of {len(values)} trial(s))")
        return None


def policy_from_dict(d: Mapping[str, Any] | None) -> EarlyTerminationPolicy:
    if not d:
        return NoTerminationPolicy()
    kinds = {c.name: c for c in (NoTerminationPolicy, BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy)}
    args = {k: v for k, v in d.items() if k != "kind"}
    if d.get("kind") not in kinds:
        raise ConfigError(f"unknown policy {d.get('kind')!r}; known: {', '.join(kinds)}")
    return kinds[d["kind"]](**args)
