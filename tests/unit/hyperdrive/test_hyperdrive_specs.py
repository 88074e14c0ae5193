"""HyperDrive's pure parts: expressions, samplers, policies (checked against hand computations), configuration."""
from __future__ import annotations

import math
import random
import statistics

import pytest

from runyard import ConfigError, ScriptRunConfig
from runyard.errors import RunyardWarning
from runyard.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    MedianStoppingPolicy,
    PrimaryMetricGoal,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    lognormal,
    loguniform,
    normal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from runyard.hyperdrive.config import apply_parameters
from runyard.hyperdrive.expressions import parse
from runyard.hyperdrive.sampling import Sampler


def test_expressions_follow_azures_definitions():
    rng = random.Random(0)
    draws = [loguniform(-6, -1).sample(rng) for _ in range(2000)]
    assert all(math.exp(-6) <= d <= math.exp(-1) for d in draws)
    logs = [math.log(d) for d in draws]  # uniform in the exponent: its mean is the middle
    assert abs(statistics.fmean(logs) - -3.5) < 0.1
    assert {quniform(0, 10, 2).sample(rng) for _ in range(500)} <= {0, 2, 4, 6, 8, 10}
    assert all(x % 0.5 == 0 for x in (qloguniform(0, 3, 0.5).sample(rng) for _ in range(200)))
    assert {randint(3).sample(rng) for _ in range(200)} == {0, 1, 2}
    assert abs(statistics.fmean(normal(10, 2).sample(rng) for _ in range(4000)) - 10) < 0.15
    assert all(x > 0 for x in (lognormal(0, 1).sample(rng) for _ in range(200)))
    assert all(x % 5 == 0 for x in (qnormal(50, 10, 5).sample(rng) for _ in range(200)))
    assert choice([1, 2]).args == choice(1, 2).args == choice(range(1, 3)).args == (1, 2)
    assert parse("loguniform(-6, -1)") == loguniform(-6, -1) and parse("choice(16, 32)") == choice(16, 32)


@pytest.mark.parametrize("make, message", [
    (lambda: uniform(1, 1), "needs min < max"),
    (lambda: loguniform(0, -1), "needs min < max"),
    (lambda: quniform(0, 1, 0), "needs q > 0"),
    (lambda: normal(0, -1), "needs sigma > 0"),
    (lambda: randint(0), "upper >= 1"),
    (lambda: choice(), "at least one option"),
    (lambda: uniform("a", 2), "must be a finite number"),
    (lambda: parse("__import__('os')"), "not a parameter expression"),
])
def test_bad_expressions_are_refused_at_once(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_random_sampling_is_reproducible_and_never_repeats_a_configuration():
    space = {"lr": choice(1, 2, 3), "bs": choice(8, 16)}
    first = Sampler(RandomParameterSampling(space, seed=7), maximize=True)
    runs = [first.next() for _ in range(7)]
    assert runs[-1] is None and len({tuple(sorted(r.items())) for r in runs[:-1]}) == 6  # all 6, then exhausted
    again = Sampler(RandomParameterSampling(space, seed=7), maximize=True)
    assert [again.next() for _ in range(6)] == runs[:6]
    assert set(runs[0]) == {"--lr", "--bs"}  # keys become flags
    warm = Sampler(RandomParameterSampling(space, seed=7), maximize=True, history=[(runs[0], 0.5)])
    assert runs[0] not in [warm.next() for _ in range(5)]


def test_grid_sampling_covers_the_grid_in_order_and_needs_choices():
    sampler = Sampler(GridParameterSampling({"a": choice(1, 2), "b": choice("x", "y")}), maximize=True)
    assert [sampler.next() for _ in range(5)] == [{"--a": 1, "--b": "x"}, {"--a": 1, "--b": "y"},
                                                  {"--a": 2, "--b": "x"}, {"--a": 2, "--b": "y"}, None]
    with pytest.raises(ConfigError, match="grid sampling needs choice"):
        GridParameterSampling({"a": uniform(0, 1)})
    with pytest.raises(ConfigError, match="Bayesian sampling supports choice, uniform and quniform"):
        BayesianParameterSampling({"a": loguniform(0, 1)})


def test_bandit_policy_by_hand():
    series = {"a": [0.5, 0.8], "b": [0.4, 0.6], "c": [0.3, 0.7]}
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.2, delay_evaluation=2)
    assert policy.verdict("b", 1, series, set(), True) is None  # before delay_evaluation
    # best at interval 2 is 0.8; 0.8 / 1.2 = 0.6667: b (0.6) stops, c (0.7) goes on
    assert "0.6 at interval 2 is below 0.666667" in policy.verdict("b", 2, series, set(), True)
    assert policy.verdict("c", 2, series, set(), True) is None
    amount = BanditPolicy(slack_amount=0.15)
    assert amount.verdict("b", 2, series, set(), True) and not amount.verdict("c", 2, series, set(), True)
    losses = {"a": [1.0], "b": [1.3]}  # minimize: bound 1.0 * 1.2 = 1.2
    assert BanditPolicy(slack_factor=0.2).verdict("b", 1, losses, set(), False)
    every_second = BanditPolicy(evaluation_interval=2, slack_factor=0.01)
    assert every_second.verdict("b", 1, {"a": [0.9], "b": [0.1]}, set(), True) is None
    with pytest.raises(ConfigError, match="exactly one of slack_factor or slack_amount"):
        BanditPolicy(slack_factor=0.1, slack_amount=0.1)


def test_median_stopping_policy_by_hand():
    series = {"a": [0.9, 0.9], "b": [0.5, 0.7], "c": [0.2, 0.4]}
    # running averages at interval 2: a 0.9, b 0.6, c 0.3 → median 0.6
    policy = MedianStoppingPolicy()
    assert "best 0.4 by interval 2 is worse than the median 0.6" in policy.verdict("c", 2, series, set(), True)
    assert policy.verdict("b", 2, series, set(), True) is None  # its best, 0.7, beats 0.6


def test_truncation_selection_policy_by_hand():
    series = {"a": [0.9], "b": [0.5], "c": [0.2], "d": [0.7]}
    policy = TruncationSelectionPolicy(truncation_percentage=50)
    stopped = {r for r in series if policy.verdict(r, 1, series, set(), True)}
    assert stopped == {"b", "c"}  # the worst 2 of 4
    excluding = TruncationSelectionPolicy(truncation_percentage=50, exclude_finished_jobs=True)
    assert {r for r in "abd" if excluding.verdict(r, 1, series, {"c"}, True)} == {"b"}  # c finished: of a, b, d, 1
    with pytest.raises(ConfigError, match="between 1 and 99"):
        TruncationSelectionPolicy(truncation_percentage=0)


def test_configuration_checks_and_arguments(tmp_path):
    (tmp_path / "t.py").write_text("")
    src = ScriptRunConfig(str(tmp_path), "t.py", arguments=["--lr", 0.5, "--epochs", 3])
    ps = RandomParameterSampling({"--lr": uniform(0, 1)})
    with pytest.warns(RunyardWarning, match="clamped to 4"):
        hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=ps, primary_metric_name="acc",
                              primary_metric_goal="maximize", max_total_runs=4, max_concurrent_runs=10)
    assert hd.max_concurrent_runs == 4 and hd.primary_metric_goal == PrimaryMetricGoal.MAXIMIZE
    with pytest.warns(RunyardWarning, match="the sweep runs 2 trial"):
        assert HyperDriveConfig(run_config=src, hyperparameter_sampling=GridParameterSampling({"a": choice(1, 2)}),
                                primary_metric_name="acc", primary_metric_goal="MAXIMIZE",
                                max_total_runs=10).max_total_runs == 2
    with pytest.raises(ConfigError, match="takes no early termination policy"):
        HyperDriveConfig(run_config=src, hyperparameter_sampling=BayesianParameterSampling({"a": uniform(0, 1)}),
                         policy=BanditPolicy(slack_factor=0.1), primary_metric_name="acc",
                         primary_metric_goal="MAXIMIZE", max_total_runs=4)
    with pytest.raises(ConfigError, match="MAXIMIZE or MINIMIZE"):
        HyperDriveConfig(run_config=src, hyperparameter_sampling=ps, primary_metric_name="acc",
                         primary_metric_goal="up", max_total_runs=4)
    assert apply_parameters(("--lr", "0.5", "--epochs", "3"), {"--lr": 0.01, "--bs": 16}) == (
        "--lr", "0.01", "--epochs", "3", "--bs", "16")
    assert apply_parameters(("--lr=0.5",), {"--lr": 0.1}) == ("--lr=0.1",)
