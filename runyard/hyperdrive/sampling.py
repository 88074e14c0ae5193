"""Parameter sampling: random, grid, Bayesian (Optuna's TPE). Samplers are deterministic given their seed."""
from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping
from typing import Any

from runyard.errors import ConfigError
from runyard.hyperdrive.expressions import Expression


def flag(key: str) -> str:
    """Parameter names are script flags: ``lr`` → ``--lr`` (``--lr`` and ``-l`` stay as written)."""
    key = str(key).strip()
    if not key:
        raise ConfigError("a parameter name cannot be empty")
    return key if key.startswith("-") else f"--{key}"


def config_key(params: Mapping[str, Any]) -> str:
    """One configuration as a comparable string (duplicates are not run twice)."""
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, default=str)


class _Sampling:
    kind = ""

    def __init__(self, parameter_space: Mapping[str, Expression], properties: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> None:
        if not isinstance(parameter_space, Mapping) or not parameter_space:
            raise ConfigError(f"{type(self).__name__} needs a non-empty dict of parameter expressions, "
                              f"e.g. {{'--lr': loguniform(-6, -1)}}")
        space: dict[str, Expression] = {}
        for key, expression in parameter_space.items():
            if not isinstance(expression, Expression):
                raise ConfigError(f"parameter {key!r} must be a parameter expression such as choice(...) or "
                                  f"uniform(...), got {expression!r}")
            space[flag(key)] = expression
        self.parameter_space = space
        self.properties = dict(properties or {})
        self.seed = seed if seed is not None else self.properties.get("seed")
        self._check()

    def _check(self) -> None:
        pass

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seed": self.seed,
                "parameter_space": {k: e.to_dict() for k, e in self.parameter_space.items()}}

    def size(self) -> int | None:
        """How many distinct configurations exist (None: unbounded)."""
        if all(e.is_discrete or e.kind == "randint" for e in self.parameter_space.values()):
            n = 1
            for e in self.parameter_space.values():
                n *= len(set(map(repr, e.args))) if e.is_discrete else e.args[0]
            return n
        return None


class RandomParameterSampling(_Sampling):
    """Each configuration drawn at random from the expressions (reproducible with ``seed``)."""

    kind = "random"


class GridParameterSampling(_Sampling):
    """Every combination of the ``choice`` options, in order."""

    kind = "grid"

    def _check(self) -> None:
        for key, e in self.parameter_space.items():
            if not e.is_discrete:
                raise ConfigError(f"grid sampling needs choice(...) for every parameter; {key} is {e!r}")


class BayesianParameterSampling(_Sampling):
    """Optuna's TPE sampler over ``choice``, ``uniform`` and ``quniform``; no early termination policy."""

    kind = "bayesian"

    def _check(self) -> None:
        for key, e in self.parameter_space.items():
            if e.kind not in ("choice", "uniform", "quniform"):
                raise ConfigError(f"Bayesian sampling supports choice, uniform and quniform; {key} is {e!r}")


def sampling_from_dict(d: Mapping[str, Any]) -> _Sampling:
    cls = {"random": RandomParameterSampling, "grid": GridParameterSampling, "bayesian": BayesianParameterSampling}
    if d.get("kind") not in cls:
        raise ConfigError(f"sampling must be random, grid or bayesian, got {d.get('kind')!r}")
    space = {k: Expression.from_dict(v) for k, v in d["parameter_space"].items()}
    return cls[d["kind"]](space, seed=d.get("seed"))


class Sampler:
    """Draws the next configuration; told each finished trial's result (Bayesian sampling learns from it).

    ``history``: (configuration, final metric or None) of trials already run (warm start, or this sweep's own)."""

    def __init__(self, sampling: _Sampling, maximize: bool, history: list[tuple[dict, float | None]] = ()) -> None:
        self.sampling = sampling
        self.maximize = maximize
        self.rng = random.Random(sampling.seed)
        self.seen: set[str] = set()
        self._grid = None
        self._study = None
        self._asked: dict[str, Any] = {}
        if sampling.kind == "grid":
            keys = list(sampling.parameter_space)
            options = [list(dict.fromkeys(sampling.parameter_space[k].args)) for k in keys]
            self._grid = (dict(zip(keys, values)) for values in itertools.product(*options))
        if sampling.kind == "bayesian":
            self._study = self._new_study()
        for params, value in history:
            self.seen.add(config_key(params))
            if self._study is not None and value is not None:
                self._add_finished(params, value)

    def _distributions(self) -> dict[str, Any]:
        import optuna

        out = {}
        for key, e in self.sampling.parameter_space.items():
            if e.kind == "choice":
                out[key] = optuna.distributions.CategoricalDistribution(list(dict.fromkeys(e.args)))
            elif e.kind == "uniform":
                out[key] = optuna.distributions.FloatDistribution(float(e.args[0]), float(e.args[1]))
            else:
                low, high, q = (float(a) for a in e.args)
                high = low + ((high - low) // q) * q  # optuna needs the range to be a multiple of the step
                out[key] = optuna.distributions.FloatDistribution(low, high, step=q)
        return out

    def _new_study(self):
        try:
            import optuna
        except ImportError:
            raise ConfigError("Bayesian sampling needs Optuna: pip install 'runyard[hyperdrive]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(direction="maximize" if self.maximize else "minimize",
                                   sampler=optuna.samplers.TPESampler(seed=self.sampling.seed,
                                                                      n_startup_trials=5))

    def _add_finished(self, params: dict, value: float) -> None:
        import optuna

        distributions = self._distributions()
        if set(params) != set(distributions):
            return  # an earlier sweep over other parameters teaches nothing here
        self._study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))

    def next(self) -> dict[str, Any] | None:
        """A configuration not run before (None: the space is exhausted)."""
        for _ in range(1000):
            params = self._draw()
            if params is None:
                return None
            key = config_key(params)
            if key not in self.seen:
                self.seen.add(key)
                return params
            if self._study is not None:  # TPE proposed a known point: close that trial and ask again
                self._study.tell(self._asked.pop(key), state=_pruned())
        return None

    def _draw(self) -> dict[str, Any] | None:
        if self._grid is not None:
            return next(self._grid, None)
        if self._study is not None:
            trial = self._study.ask(self._distributions())
            params = dict(trial.params)
            self._asked[config_key(params)] = trial
            return params
        size = self.sampling.size()
        if size is not None and len(self.seen) >= size:
            return None
        return {k: e.sample(self.rng) for k, e in self.sampling.parameter_space.items()}

    def report(self, params: dict[str, Any], value: float | None) -> None:
        """A trial ended with its final primary metric (None: failed, canceled early or never logged it)."""
        if self._study is None:
            return
        trial = self._asked.pop(config_key(params), None)
        if trial is None:
            return
        if value is None:
            self._study.tell(trial, state=_pruned())
        else:
            self._study.tell(trial, value)


def _pruned():
    import optuna

    return optuna.trial.TrialState.PRUNED
