"""Hyperparameter sweeps (Azure ML's HyperDrive): a parent run whose trials are child runs submitted like any run.

    from runyard.hyperdrive import HyperDriveConfig, RandomParameterSampling, BanditPolicy, PrimaryMetricGoal, choice, loguniform
    ps = RandomParameterSampling({"--batch-size": choice(25, 50, 100), "--learning-rate": loguniform(-6, -1)})
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=ps, policy=BanditPolicy(evaluation_interval=2, slack_factor=0.1),
                          primary_metric_name="validation_acc", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
                          max_total_runs=20, max_concurrent_runs=4)
    hd_run = exp.submit(hd); hd_run.wait_for_completion(show_output=True); hd_run.get_best_run_by_primary_metric()
"""
from __future__ import annotations

from runyard.hyperdrive.config import HyperDriveConfig, HyperDriveRun, HyperDriveRunConfig, PrimaryMetricGoal
from runyard.hyperdrive.expressions import (
    choice,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    randint,
    uniform,
)
from runyard.hyperdrive.policies import (
    BanditPolicy,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    TruncationSelectionPolicy,
)
from runyard.hyperdrive.sampling import BayesianParameterSampling, GridParameterSampling, RandomParameterSampling

__all__ = ["BanditPolicy", "BayesianParameterSampling", "GridParameterSampling", "HyperDriveConfig", "HyperDriveRun",
           "HyperDriveRunConfig",
           "MedianStoppingPolicy", "NoTerminationPolicy", "PrimaryMetricGoal", "RandomParameterSampling",
           "TruncationSelectionPolicy", "choice", "lognormal", "loguniform", "normal", "qlognormal", "qloguniform",
           "qnormal", "quniform", "randint", "uniform"]
