"""Sweeps for real: trials are submitted runs of a cheap script whose "accuracy" is a known function of its
parameters, logged over several intervals."""
from __future__ import annotations

import json
import re
import textwrap
import time

import pytest

from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.hyperdrive import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    RandomParameterSampling,
    TruncationSelectionPolicy,
    choice,
    loguniform,
    quniform,
    uniform,
)
from runyard.hyperdrive.config import STOPPED_BY_TAG, metric_series

pytestmark = [pytest.mark.integration]

TRAIN = """
    import argparse, math, sys, time
    from runyard import Run
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--bs", type=int, default=32)
    p.add_argument("--intervals", type=int, default=6)
    p.add_argument("--pause", type=float, default=0.15)
    p.add_argument("--metric", default="acc")
    p.add_argument("--x", type=float, default=0.0)
    p.add_argument("--y", type=float, default=0.0)
    a = p.parse_args()
    run = Run.get_context()
    if a.bs == 13:
        sys.exit("batch size 13 is unlucky")
    final = 1 - (math.log10(a.lr) + 2) ** 2 / 10 - abs(a.bs - 64) / 640 - (a.x - 0.3) ** 2 - (a.y + 0.2) ** 2
    for i in range(1, a.intervals + 1):
        run.log(a.metric, final * (1 - math.exp(-i / 2)))
        run.flush()
        time.sleep(a.pause)
"""


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    return root


def sweep(ws, project, sampling, total, concurrent=None, policy=None, args=(), metric="acc", goal="MAXIMIZE"):
    src = ScriptRunConfig(str(project), "train.py", arguments=list(args))
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=sampling, policy=policy, primary_metric_name=metric,
                          primary_metric_goal=goal, max_total_runs=total, max_concurrent_runs=concurrent)
    return Experiment(ws, "sweep").submit(hd)


def max_overlap(children) -> int:
    events = sorted([(c._info.start_time, 1) for c in children] + [(c._info.end_time, -1) for c in children],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_random_sweep_respects_its_limits_and_finds_the_true_best(ws, project, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "4")  # the local target's own limit (one run per CPU) is higher
    space = {"--lr": loguniform(-6, 0), "bs": choice(16, 32, 64, 128)}
    hd_run = sweep(ws, project, RandomParameterSampling(space, seed=3), total=8, concurrent=3)
    assert type(hd_run).__name__ == "HyperDriveRun"
    details = hd_run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"
    children = list(hd_run.get_children())
    assert len(children) == 8
    assert max_overlap(children) == 3  # observed, from the children's start and end times
    assert all(c.get_status() == "Completed" for c in children)
    finals = {c.id: c.get_metrics()["acc"][-1] for c in children}
    best = hd_run.get_best_run_by_primary_metric()
    assert finals[best.id] == max(finals.values())
    args = best.get_details()["runDefinition"]["arguments"]
    params = hd_run.get_hyperparameters()[best.id]
    assert args == ["--lr", str(params["--lr"]), "--bs", str(params["--bs"])]
    top = hd_run.get_children_sorted_by_primary_metric(top=3)
    assert [r["run_id"] for r in top][0] == best.id and len(top) == 3
    curve = hd_run.get_metrics()["acc"]  # best so far, one value per finished trial with a metric
    assert curve == sorted(curve) and curve[-1] == max(finals.values())
    assert len({json.dumps(p, sort_keys=True) for p in hd_run.get_hyperparameters().values()}) == 8


def test_grid_sweep_runs_every_combination_once_and_survives_failing_trials(ws, project):
    grid = GridParameterSampling({"--lr": choice(0.001, 0.01, 0.1), "--bs": choice(32, 64, 13)})  # 13 fails
    with pytest.warns(UserWarning, match="the sweep runs 9 trial"):
        hd_run = sweep(ws, project, grid, total=12, concurrent=2, args=["--intervals", 2, "--pause", 0])
    assert hd_run.wait_for_completion()["status"] == "Completed"
    configs = sorted((p["--lr"], p["--bs"]) for p in hd_run.get_hyperparameters().values())
    assert configs == sorted((lr, bs) for lr in (0.001, 0.01, 0.1) for bs in (32, 64, 13))
    failed = [c for c in hd_run.get_children() if c.get_status() == "Failed"]
    assert len(failed) == 3 and all(hd_run.get_hyperparameters()[c.id]["--bs"] == 13 for c in failed)
    assert hd_run.get_best_run_by_primary_metric(include_failed=False).get_status() == "Completed"


def _check_stops(hd_run, pattern, check):
    """Every trial the policy stopped: its reason, checked against the metrics the trials logged."""
    children = list(hd_run.get_children())
    series = metric_series(hd_run.workspace.metadata, [c.id for c in children], "acc")
    stopped = [c for c in children if c.get_tags().get(STOPPED_BY_TAG)]
    for child in stopped:
        reason = child.get_tags()[STOPPED_BY_TAG]
        m = re.match(pattern, reason)
        assert m, reason
        assert child.get_status() == "Canceled"
        check(m, series, child.id)
    return stopped, series


def test_bandit_policy_stops_what_it_should(ws, project):
    space = {"--lr": loguniform(-6, 0), "--bs": choice(16, 64, 128)}
    hd_run = sweep(ws, project, RandomParameterSampling(space, seed=11), total=8, concurrent=4,
                   policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2),
                   args=["--intervals", 8, "--pause", 0.3])
    assert hd_run.wait_for_completion()["status"] == "Completed"

    def check(m, series, run_id):
        value, interval, bound, best = float(m[1]), int(m[2]), float(m[3]), float(m[4])
        assert interval >= 2 and series[run_id][interval - 1] == pytest.approx(value, rel=1e-5)
        assert bound == pytest.approx(best / 1.1, rel=1e-5) and value < bound
        at_interval = [v[interval - 1] for v in series.values() if len(v) >= interval]
        assert best <= max(at_interval) + 1e-9  # the best it compared with was logged by some trial at that interval
        assert any(v == pytest.approx(best, rel=1e-5) for v in at_interval)

    stopped, series = _check_stops(
        hd_run, r"BanditPolicy: ([\d.e-]+) at interval (\d+) is below ([\d.e-]+) \(best ([\d.e-]+) /", check)
    assert stopped, "the spread of this space makes some trials far worse than the best"
    assert all(len(series[c.id]) < 8 for c in stopped)  # stopped before their last interval


def test_truncation_selection_stops_the_worst(ws, project):
    space = {"--lr": loguniform(-6, 0), "--bs": choice(16, 64, 128)}
    hd_run = sweep(ws, project, RandomParameterSampling(space, seed=5), total=6, concurrent=6,
                   policy=TruncationSelectionPolicy(truncation_percentage=34, evaluation_interval=2),
                   args=["--intervals", 8, "--pause", 0.3])
    assert hd_run.wait_for_completion()["status"] == "Completed"

    def check(m, series, run_id):
        value, interval, cut, n = float(m[1]), int(m[2]), int(m[3]), int(m[4])
        assert interval % 2 == 0 and cut == int(n * 34 / 100)
        assert series[run_id][interval - 1] == pytest.approx(value, rel=1e-5)

    stopped, _ = _check_stops(hd_run, r"TruncationSelectionPolicy: ([\d.e-]+) at interval (\d+) is among the worst "
                                      r"34% \((\d+) of (\d+) trial", check)
    assert stopped


def test_cancel_cancels_every_trial(ws, project):
    hd_run = sweep(ws, project, RandomParameterSampling({"--lr": loguniform(-6, 0)}, seed=1), total=6, concurrent=2,
                   args=["--intervals", 200, "--pause", 0.2])
    deadline = time.monotonic() + 30
    while len([c for c in hd_run.get_children() if c.get_status() == "Running"]) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    hd_run.cancel()
    assert hd_run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    children = list(hd_run.get_children())
    assert len(children) == 2 and all(c.get_status() == "Canceled" for c in children)


def test_a_metric_no_trial_logs_is_reported(ws, project):
    hd_run = sweep(ws, project, RandomParameterSampling({"--lr": loguniform(-6, 0)}, seed=2), total=3,
                   args=["--intervals", 1, "--pause", 0], metric="validation_acc")
    details = hd_run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and details["error"]["code"] == "PrimaryMetricMissing"
    assert "they logged acc" in hd_run.get_tags()["runyard.warning"]


def test_bayesian_finds_a_better_optimum_than_random_with_the_same_budget(ws, project):
    space = {"--x": uniform(-1, 1), "--y": quniform(-1, 1, 0.05)}
    common = dict(total=16, concurrent=1, args=["--intervals", 1, "--pause", 0, "--lr", 0.01, "--bs", 64])
    bayes = sweep(ws, project, BayesianParameterSampling(space, seed=4), **common)
    rand = sweep(ws, project, RandomParameterSampling(space, seed=4), **common)
    for run in (bayes, rand):
        assert run.wait_for_completion()["status"] == "Completed"
    best = {name: run.get_children_sorted_by_primary_metric(top=1)[0]["best_primary_metric"]
            for name, run in (("bayes", bayes), ("random", rand))}
    assert best["bayes"] > best["random"], best


def test_cli_sweep_submit_show_and_bad_files(ws, project):
    import os
    import subprocess
    import sys

    cli = [os.path.join(os.path.dirname(sys.executable), "runyard"), "-w", str(ws.path)]
    (project / "sweep.yml").write_text(textwrap.dedent("""
        experiment: cli
        script: train.py
        arguments: [--intervals, 2, --pause, 0]
        sampling:
          type: grid
          parameters:
            --lr: choice(0.001, 0.01)
            bs: choice(32, 64)
        policy: {type: bandit, slack_factor: 0.5}
        primary_metric: {name: acc, goal: maximize}
        max_total_runs: 4
        max_concurrent_runs: 2
    """))
    out = subprocess.run([*cli, "sweep", "submit", str(project / "sweep.yml"), "--wait"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    sweep_id = re.search(r"submitted sweep (\S+)", out.stdout)[1]
    assert "Status: Completed" in out.stdout and "4 trial(s), maximize acc" in out.stdout
    shown = subprocess.run([*cli, "sweep", "show", sweep_id, "--top", "1"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "0.01" in shown.stdout and "64" in shown.stdout, shown.stdout  # the true best
    (project / "bad.yml").write_text("script: train.py\nsampling:\n  type: grid\n  parameters:\n"
                                     "    --lr: uniform(0, 1)\nprimary_metric: {name: acc}\nmax_total_runs: 2\n")
    bad = subprocess.run([*cli, "sweep", "submit", str(project / "bad.yml")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "grid sampling needs choice(...) for every parameter; --lr" in bad.stderr
    trial = next(iter(ws.get_run(sweep_id).get_children())).id
    not_sweep = subprocess.run([*cli, "sweep", "show", trial], capture_output=True, text=True, timeout=60)
    assert not_sweep.returncode == 1 and "is not a sweep" in not_sweep.stderr


def test_warm_start_skips_what_an_earlier_sweep_ran_and_the_sweep_outlives_its_submitter(ws, project):
    import subprocess
    import sys

    grid = GridParameterSampling({"--lr": choice(0.001, 0.01), "--bs": choice(32, 64)})
    first = sweep(ws, project, grid, total=2, args=["--intervals", 1, "--pause", 0])
    assert first.wait_for_completion()["status"] == "Completed"
    # The second sweep is submitted by a process that exits at once: its driver goes on alone.
    code = textwrap.dedent(f"""
        import warnings; warnings.simplefilter("ignore")
        from runyard import Experiment, ScriptRunConfig, Workspace
        from runyard.hyperdrive import GridParameterSampling, HyperDriveConfig, choice
        ws = Workspace({str(ws.path)!r})
        hd = HyperDriveConfig(run_config=ScriptRunConfig({str(project)!r}, "train.py", arguments=["--intervals", 1]),
                              hyperparameter_sampling=GridParameterSampling({{"--lr": choice(0.001, 0.01),
                                                                              "--bs": choice(32, 64)}}),
                              primary_metric_name="acc", primary_metric_goal="MAXIMIZE", max_total_runs=4,
                              resume_from=[{first.id!r}])
        print(Experiment(ws, "sweep").submit(hd).id)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    second = ws.get_run(out.stdout.split()[-1])
    assert type(second).__name__ == "HyperDriveRun"
    assert second.wait_for_completion()["status"] == "Completed"
    before = {json.dumps(p, sort_keys=True) for p in first.get_hyperparameters().values()}
    after = {json.dumps(p, sort_keys=True) for p in second.get_hyperparameters().values()}
    assert len(before) == 2 and len(after) == 2 and not before & after  # only the two configurations not yet run


def test_max_duration_cancels_the_running_trials(ws, project):
    src = ScriptRunConfig(str(project), "train.py", arguments=["--intervals", 300, "--pause", 0.1])
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=RandomParameterSampling({"--lr": uniform(0.001, 1)}),
                          primary_metric_name="acc", primary_metric_goal="MAXIMIZE", max_total_runs=4,
                          max_concurrent_runs=2, max_duration_minutes=0.1)
    started = time.monotonic()
    run = Experiment(ws, "sweep").submit(hd)
    assert run.wait_for_completion()["status"] == "Completed"
    assert 6 <= time.monotonic() - started < 25
    children = list(run.get_children())
    assert len(children) == 2 and all(c.get_status() == "Canceled" for c in children)
    assert run.get_tags()["runyard.stopped"] == "max_duration_minutes reached"
    assert all(c.get_tags()["runyard.early_termination"] == "the sweep reached max_duration_minutes" for c in children)


def test_every_trial_runs_the_code_the_sweep_was_submitted_with(ws, project):
    """As on Azure, trials share the sweep's snapshot: an edit made while the sweep runs does not reach later trials
    (and the source folder is not walked again for each trial)."""
    (project / "train.py").write_text((project / "train.py").read_text() + "print('code as submitted')\n")
    grid = GridParameterSampling({"--lr": choice(0.001, 0.01, 0.1, 0.2)})
    hd_run = sweep(ws, project, grid, total=4, concurrent=1, args=["--intervals", 1, "--pause", 0.3])
    (project / "train.py").write_text("print('edited after submit')\n")  # before most trials were submitted
    (project / "new.py").write_text("x = 1\n")
    assert hd_run.wait_for_completion()["status"] == "Completed"
    children = list(hd_run.get_children())
    assert len(children) == 4
    sweep_snapshot = hd_run.get_properties()["ContentSnapshotId"]
    from runyard.compute import get_target

    for child in children:
        assert child.get_properties()["ContentSnapshotId"] == sweep_snapshot
        log = "".join(get_target(ws, "local").log_iter(child.id))
        assert "code as submitted" in log and "edited" not in log
        assert child.get_metrics()["acc"]  # the trial's own metric, logged
