"""Parameter expressions (Azure ML's ``azureml.train.hyperdrive.parameter_expressions``): what each sampled value is.

``choice(*options)``; ``randint(upper)`` (an integer in [0, upper)); ``uniform(min, max)``; ``quniform(min, max, q)``
(``round(uniform / q) * q``); ``loguniform(min, max)`` (``exp(uniform(min, max))``); ``qloguniform``; ``normal(mu,
sigma)``; ``qnormal``; ``lognormal(mu, sigma)`` (``exp(normal)``); ``qlognormal``. Bad bounds are a ConfigError at once.
"""
from __future__ import annotations

import math
import numbers
import random
from dataclasses import dataclass
from typing import Any

from runyard.errors import ConfigError


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _q(value: float, q: float | None) -> float:
    if q is None:
        return value
    out = round(value / q) * q
    return int(out) if float(q).is_integer() else out


@dataclass(frozen=True)
class Expression:
    """One parameter's distribution: ``kind`` and its ``args`` as Azure writes them."""

    kind: str
    args: tuple

    def __post_init__(self) -> None:
        kind, args = self.kind, self.args
        if kind == "choice":
            if not args:
                raise ConfigError("choice() needs at least one option")
            for option in args:
                if not isinstance(option, (str, int, float, bool)) and option is not None:
                    raise ConfigError(f"choice() options must be numbers, strings or booleans, got {option!r}")
            return
        if kind == "randint":
            (upper,) = args
            if isinstance(upper, bool) or not isinstance(upper, int) or upper < 1:
                raise ConfigError(f"randint(upper) needs a whole number upper >= 1, got {upper!r}")
            return
        low, high = (_number(a, f"{kind}() argument") for a in args[:2])
        if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
            if high <= 0:
                raise ConfigError(f"{kind}(mu, sigma{', q' if kind.startswith('q') else ''}) needs sigma > 0, got {high:g}")
        elif low >= high:
            raise ConfigError(f"{kind}(min, max{', q' if kind.startswith('q') else ''}) needs min < max, "
                              f"got {low:g} and {high:g}")
        if kind.startswith("q") and _number(args[2], f"{kind}() q") <= 0:
            raise ConfigError(f"{kind}() needs q > 0, got {args[2]!r}")

    @property
    def is_discrete(self) -> bool:
        return self.kind == "choice"

    def sample(self, rng: random.Random) -> Any:
        kind, a = self.kind, self.args
        if kind == "choice":
            return rng.choice(a)
        if kind == "randint":
            return rng.randrange(a[0])
        q = a[2] if kind.startswith("q") else None
        if kind in ("uniform", "quniform"):
            return _q(rng.uniform(a[0], a[1]), q)
        if kind in ("loguniform", "qloguniform"):
            return _q(math.exp(rng.uniform(a[0], a[1])), q)
        if kind in ("normal", "qnormal"):
            return _q(rng.gauss(a[0], a[1]), q)
        if kind in ("lognormal", "qlognormal"):
            return _q(math.exp(rng.gauss(a[0], a[1])), q)
        raise ConfigError(f"unknown parameter expression {kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "args": list(self.args)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Expression":
        return cls(d["kind"], tuple(d["args"]))

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(map(repr, self.args))})"


def choice(*options: Any) -> Expression:
    """One of ``options``: ``choice(25, 50, 100)``, ``choice([25, 50])`` or ``choice(range(1, 5))``."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    return Expression("choice", tuple(options))


def randint(upper: int) -> Expression:
    return Expression("randint", (upper,))


def uniform(min_value: float, max_value: float) -> Expression:
    return Expression("uniform", (min_value, max_value))


def quniform(min_value: float, max_value: float, q: float) -> Expression:
    return Expression("quniform", (min_value, max_value, q))


def loguniform(min_value: float, max_value: float) -> Expression:
    return Expression("loguniform", (min_value, max_value))


def qloguniform(min_value: float, max_value: float, q: float) -> Expression:
    return Expression("qloguniform", (min_value, max_value, q))


def normal(mu: float, sigma: float) -> Expression:
    return Expression("normal", (mu, sigma))


def qnormal(mu: float, sigma: float, q: float) -> Expression:
    return Expression("qnormal", (mu, sigma, q))


def lognormal(mu: float, sigma: float) -> Expression:
    return Expression("lognormal", (mu, sigma))


def qlognormal(mu: float, sigma: float, q: float) -> Expression:
    return Expression("qlognormal", (mu, sigma, q))


_FUNCTIONS = {f.__name__: f for f in (choice, randint, uniform, quniform, loguniform, qloguniform, normal, qnormal,
                                       lognormal, qlognormal)}


def parse(text: str) -> Expression:
    """``"loguniform(-6, -1)"`` → the expression (sweep YAML files); only these functions and literal arguments."""
    import ast

    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        raise ConfigError(f"{text!r} is not a parameter expression such as choice(1, 2) or loguniform(-6, -1) "
                          f"(known: {', '.join(_FUNCTIONS)})")
    try:
        args = [ast.literal_eval(a) for a in node.args]
    except ValueError:
        raise ConfigError(f"{text!r}: the arguments must be literal numbers, strings or lists") from None
    return _FUNCTIONS[node.func.id](*args)
