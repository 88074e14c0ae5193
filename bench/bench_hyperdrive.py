"""HyperDrive: bookkeeping overhead per trial vs Optuna and Ray Tune, and the compute early termination saves.

    .venv/bin/python bench/bench_hyperdrive.py [--trials 200] [--concurrent 4] [--files 500] [--no-tune]

(1) ``--trials`` trivial trials (a script that logs one value, in a project of ``--files`` more files),
    ``--concurrent`` at a time, each a subprocess, five ways in one run: bare subprocesses (no tool, the same
    concurrency), Optuna in memory and with SQLite storage (``n_jobs``: each trial's function runs the script in a
    subprocess and reads its value), Ray Tune's function trainable on a local Ray (``max_concurrent_trials``; the
    trainable runs the same script and reports its value; Ray runs inside a loopback-only network namespace, as the
    network rule requires — needs root and ``ip``), and a runyard sweep (each trial a submitted child run: status,
    logs, metrics). Overhead per trial = (wall − bare wall) / trials.
(2) A synthetic learning-curve workload (12 trials, 10 intervals of 0.2 s, accuracy a known function of the
    parameters): the same sweep (same seed, same configurations) without a policy and with BanditPolicy; trial-seconds
    (sum of the trials' durations) and the best metric of each.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRIVIAL = """
import sys
from runyard import Run
x = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
value = -(x - 0.3) ** 2
Run.get_context().log("score", value)
print(value)
"""

CURVE = """
import argparse, math, time
from runyard import Run
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float); p.add_argument("--bs", type=int)
a = p.parse_args()
run = Run.get_context()
final = 1 - (math.log10(a.lr) + 2) ** 2 / 10 - abs(a.bs - 64) / 640
for i in range(1, 11):
    run.log("acc", final * (1 - math.exp(-i / 2)))
    run.flush()
    time.sleep(0.2)
"""


def bench_overhead(root: Path, trials: int, concurrent: int, tune: bool, files: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    from runyard import Experiment, ScriptRunConfig, Workspace
    from runyard.hyperdrive import HyperDriveConfig, RandomParameterSampling, uniform

    project = root / "project"  # the script alone: the workspace, Optuna's and Tune's files stay out of the snapshot
    project.mkdir()
    script = project / "trivial.py"
    script.write_text(textwrap.dedent(TRIVIAL))
    for i in range(files):  # the rest of a project: modules, configs (a sweep snapshots them all)
        (project / f"pkg{i // 100}").mkdir(exist_ok=True)
        (project / f"pkg{i // 100}" / f"m{i}.py").write_text(f"VALUE = {i}\n" * 20)
    xs = [i / trials for i in range(trials)]

    def one(x: float) -> float:
        out = subprocess.run([sys.executable, str(script), "--x", str(x)], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        list(pool.map(one, xs))
    bare = time.perf_counter() - started

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = {}
    for name, storage in (("Optuna (in memory)", None), ("Optuna (SQLite storage)", f"sqlite:///{root / 'optuna.db'}")):
        study = optuna.create_study(direction="maximize", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
        started = time.perf_counter()
        study.optimize(lambda t: one(t.suggest_float("x", 0, 1)), n_trials=trials, n_jobs=concurrent)
        results[name] = time.perf_counter() - started
    if tune:
        results["Ray Tune (function trainable)"] = tune_in_namespace(script, trials, concurrent)

    # The same number at a time as the others: the local queue's default is one run per CPU (RUNYARD_LOCAL_MAX_RUNS).
    os.environ["RUNYARD_LOCAL_MAX_RUNS"] = str(concurrent)
    ws = Workspace(root / "ws")
    src = ScriptRunConfig(str(project), "trivial.py")
    hd = HyperDriveConfig(run_config=src, hyperparameter_sampling=RandomParameterSampling({"--x": uniform(0, 1)}, seed=0),
                          primary_metric_name="score", primary_metric_goal="MAXIMIZE", max_total_runs=trials,
                          max_concurrent_runs=concurrent)
    started = time.perf_counter()
    run = Experiment(ws, "overhead").submit(hd)
    run.wait_for_completion()
    results["runyard sweep"] = time.perf_counter() - started
    assert len(list(run.get_children())) == trials

    print(f"\n(1) {trials} trivial trials, {concurrent} at a time, a project of {files + 1} files (bare subprocesses: "
          f"{bare:.2f} s, {bare / trials * 1000:.0f} ms per trial)\n")
    print(f"{'':32} {'wall':>8} {'overhead per trial':>20}")
    for name, wall in results.items():
        if wall is None:
            print(f"{name:32} {'not run':>8} (Ray Tune needs root and ip for its network namespace)")
            continue
        print(f"{name:32} {wall:>6.2f} s {(wall - bare) / trials * 1000:>17.0f} ms")


TUNE = """
import subprocess, sys, time
import ray
from ray import tune

script, trials, concurrent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ray.init(num_cpus=concurrent, include_dashboard=False, log_to_driver=False)

def trainable(config):
    out = subprocess.run([sys.executable, script, "--x", str(config["x"])], capture_output=True, text=True, check=True)
    tune.report({"score": float(out.stdout.strip().splitlines()[-1])})

started = time.perf_counter()
tuner = tune.Tuner(trainable, param_space={"x": tune.uniform(0, 1)},
                   tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=trials,
                                               max_concurrent_trials=concurrent),
                   run_config=tune.RunConfig(verbose=0, storage_path=sys.argv[4]))
results = tuner.fit()
assert len(results) == trials and not results.errors, results.errors
print("WALL", time.perf_counter() - started)
"""


def tune_in_namespace(script: Path, trials: int, concurrent: int) -> float | None:
    """Ray Tune's wall time for the same trials (Ray started inside, not counted), in a loopback-only namespace."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return None
    driver = script.parent.parent / "tune_driver.py"
    driver.write_text(textwrap.dedent(TUNE))
    ns = f"runyard-bench-tune-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        # RAY_AUTH_MODE: Ray >= 2.5x would otherwise write ~/.ray/auth_token, and every later local cluster on this
        # machine would require it (the cluster is alone in its namespace)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(driver), str(script), str(trials),
                              str(concurrent), str(script.parent.parent / "tune-results")], env=env, capture_output=True,
                             text=True, timeout=1800)
        if out.returncode != 0:
            raise RuntimeError(f"Ray Tune failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return float(next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("WALL ")))
    finally:
        subprocess.run(f"ip netns pids {ns} | xargs -r kill -9", shell=True)
        subprocess.run(["ip", "netns", "delete", ns])


def bench_early_termination(root: Path) -> None:
    from runyard import Experiment, ScriptRunConfig, Workspace
    from runyard.hyperdrive import BanditPolicy, HyperDriveConfig, RandomParameterSampling, choice, loguniform

    project = root / "curve"
    project.mkdir()
    (project / "curve.py").write_text(textwrap.dedent(CURVE))
    ws = Workspace(root / "ws2")
    space = {"--lr": loguniform(-7, 1), "--bs": choice(16, 32, 64, 128)}
    rows = []
    for name, policy in (("no policy", None), ("BanditPolicy(slack 0.1, delay 2)",
                                                 BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2))):
        hd = HyperDriveConfig(run_config=ScriptRunConfig(str(project), "curve.py"), policy=policy,
                              hyperparameter_sampling=RandomParameterSampling(space, seed=21), primary_metric_name="acc",
                              primary_metric_goal="MAXIMIZE", max_total_runs=12, max_concurrent_runs=2)
        started = time.perf_counter()
        run = Experiment(ws, "early").submit(hd)
        run.wait_for_completion()
        wall = time.perf_counter() - started
        children = list(run.get_children())
        trial_seconds = sum(c._info.end_time - c._info.start_time for c in children)
        best = run.get_children_sorted_by_primary_metric(top=1)[0]["best_primary_metric"]
        stopped = sum(c.get_status() == "Canceled" for c in children)
        rows.append((name, wall, trial_seconds, best, stopped))
    base = rows[0][2]
    print("\n(2) 12 trials × 10 intervals of 0.2 s, 2 at a time, same seed (same configurations)\n")
    print(f"{'':34} {'wall':>8} {'trial-seconds':>14} {'saved':>7} {'stopped':>8} {'best acc':>9}")
    for name, wall, seconds, best, stopped in rows:
        print(f"{name:34} {wall:>6.2f} s {seconds:>12.2f} s {1 - seconds / base:>6.0%} {stopped:>8} {best:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--files", type=int, default=500, help="other files in the trials' project folder")
    parser.add_argument("--no-tune", action="store_true", help="leave Ray Tune out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hyperdrive-") as tmp:
        bench_overhead(Path(tmp), args.trials, args.concurrent, not args.no_tune, args.files)
        bench_early_termination(Path(tmp))


if __name__ == "__main__":
    main()
