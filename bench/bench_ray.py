"""runyard's ray target vs Ray Train's TorchTrainer, the same 2-process PyTorch DDP job on the same two-node Ray
cluster on this machine.

    .venv/bin/python bench/bench_ray.py [--reps 3] [--steps 300]

Setup (outside any namespace, from the package registries, once): a venv in ~/.cache/runyard/bench-ray with
torch (the CPU wheel in /opt/wheels), ray[default,train] and runyard. Then, inside a loopback-only network
namespace (the network rule: Ray listens on every interface), that venv's Python starts a two-node cluster with
runyard's provisioning and measures, interleaved:

- runyard: ``Experiment.submit(PyTorch(node_count=2, PyTorchConfiguration("Gloo")))`` in the cluster's own Python
  (user-managed), and with a runyard-built environment that is already cached (torch installed by uv);
- Ray Train: the Jobs API submission (what ``ray job submit`` does) of a driver running ``TorchTrainer`` with
  ``num_workers=2`` and ``STRICT_SPREAD``.

Figures: submit → first line printed by rank 0 (its own clock, so log plumbing does not count) and submit → the
tool says the job ended (run status / job status polled every 0.1 s). Medians of the repetitions.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path.home() / ".cache" / "runyard" / "bench-ray"

TRAIN = """
def train(steps):
    import time
    import torch
    import torch.distributed as dist
    rank = dist.get_rank()
    print(f"FIRST {time.time():.3f} rank {rank} of {dist.get_world_size()}", flush=True)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = torch.Generator().manual_seed(rank)
    for _ in range(steps):
        x = torch.rand(64, 64, generator=data)
        opt.zero_grad()
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        loss.backward()
        opt.step()
    print(f"rank {rank} done, loss {loss.item():.4f}", flush=True)
"""

RUNYARD_SCRIPT = TRAIN + """
import os, sys
import torch.distributed as dist
dist.init_process_group("gloo")
train(int(sys.argv[1]))
dist.destroy_process_group()
os._exit(0)  # torch 2.13 + gloo can abort at interpreter exit
"""

RAY_TRAIN_DRIVER = TRAIN + """
import sys, tempfile
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
steps = int(sys.argv[1])
trainer = TorchTrainer(lambda: train(steps), scaling_config=ScalingConfig(
    num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1}, placement_strategy="STRICT_SPREAD"),
    run_config=RunConfig(storage_path=tempfile.mkdtemp(prefix="bench-ray-train-")))
trainer.fit()
"""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import ray.train.torch, torch, runyard"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    uv = Path(sys.executable).parent / "uv"
    print(f"setting up {VENV} (torch CPU, ray[default,train], runyard)…", flush=True)
    subprocess.run([str(uv), "venv", "-q", str(VENV), "--python", sys.executable], check=True)
    subprocess.run([str(uv), "pip", "install", "-q", "--python", str(python), "--find-links", "/opt/wheels",
                    "torch==2.13.0+cpu", "ray[default,train]==2.60.0", "-e", str(ROOT)], check=True)
    subprocess.run(probe, check=True)
    return python


def in_namespace(python: Path, argv: list[str]) -> int:
    ns = f"runyard-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{python.parent}:{os.environ['PATH']}"}
        return subprocess.run(["ip", "netns", "exec", ns, str(python), __file__, "--inside", *argv], env=env).returncode
    finally:
        subprocess.run(f"ip netns pids {ns} | xargs -r kill -9", shell=True)
        subprocess.run(["ip", "netns", "delete", ns])


def first_line_at(text: str) -> float | None:
    """When rank 0 printed its first line (Ray prefixes a worker's lines with its name and pid)."""
    import re

    found = re.search(r"FIRST (\d+\.\d+) rank 0 ", text)
    return float(found.group(1)) if found else None


def bench_runyard(ws, target, proj: Path, steps: int, environment=None) -> tuple[float, float, float]:
    from runyard import Experiment, PyTorchConfiguration
    from runyard.train.dnn import PyTorch

    est = PyTorch(str(proj), entry_script="ddp.py", arguments=[steps], compute_target=target, node_count=2,
                  distributed_training=PyTorchConfiguration("Gloo"), **(
                      {"environment_definition": environment} if environment is not None else {}))
    started = time.time()
    run = Experiment(ws, "bench").submit(est)
    running = None
    while not (status := ws.metadata.get_run(run.id).status).is_terminal():
        if running is None and status.value == "Running":
            running = time.time()
        time.sleep(0.05)
    ended = time.time()
    assert run.get_status() == "Completed", run.get_details().get("error")
    first = first_line_at("".join(target.log_iter(run.id, rank=0)))
    return (running or ended) - started, first - started, ended - started


def bench_ray_train(jobs, python: str, driver: Path, steps: int) -> tuple[float | None, float, float]:
    submission = f"raytrain-{time.time_ns()}"
    started = time.time()
    jobs.submit(submission, f"{python} {driver} {steps}", {})
    while (jobs.job(submission) or {}).get("status") not in ("SUCCEEDED", "FAILED", "STOPPED"):
        time.sleep(0.1)
    ended = time.time()
    info = jobs.job(submission)
    logs = jobs.job_logs(submission)
    assert info["status"] == "SUCCEEDED", logs[-3000:]
    return None, first_line_at(logs) - started, ended - started


def inside(reps: int, steps: int) -> None:
    from runyard import Environment, Workspace
    from runyard.compute import ComputeTarget, RayCompute

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    proj = tmp / "proj"
    proj.mkdir()
    (proj / "ddp.py").write_text(textwrap.dedent(RUNYARD_SCRIPT))
    driver = tmp / "ray_train_driver.py"
    driver.write_text(textwrap.dedent(RAY_TRAIN_DRIVER))
    ws = Workspace(tmp / "ws")
    # The nodes (started below, inheriting this) build environments from the local wheel and indexes only.
    os.environ.update(UV_OFFLINE="1", UV_PYTHON_DOWNLOADS="never")
    started = time.monotonic()
    target = ComputeTarget.create(ws, "bench", RayCompute.provisioning_configuration(max_nodes=2, min_nodes=2,
                                                                                      cpus_per_node=2))
    target.wait_for_completion(min_node_count=2)
    print(f"two-node cluster up in {time.monotonic() - started:.1f} s (runyard's provisioning)", flush=True)
    built = Environment("bench-torch")
    built.python.conda_dependencies.add_pip_package("torch==2.13.0+cpu")
    try:
        print("warm-up (first run builds the torch environment, first Ray Train run warms its imports)…", flush=True)
        bench_runyard(ws, target, proj, 10, built)
        bench_runyard(ws, target, proj, 10)
        bench_ray_train(target.jobs(), sys.executable, driver, 10)
        results: dict[str, list[tuple]] = {"runyard (cluster's Python)": [],
                                                         "runyard (built env, cached)": [], "Ray Train TorchTrainer": []}
        settle = 3.0  # the previous job's processes (Ray Train's workers, say) exit before the next is timed
        for rep in range(reps):
            time.sleep(settle)
            results["runyard (cluster's Python)"].append(bench_runyard(ws, target, proj, steps))
            time.sleep(settle)
            results["Ray Train TorchTrainer"].append(bench_ray_train(target.jobs(), sys.executable, driver, steps))
            time.sleep(settle)
            results["runyard (built env, cached)"].append(bench_runyard(ws, target, proj, steps, built))
            print(f"rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1][2]:.2f} s" for k, v in results.items()),
                  flush=True)
    finally:
        target.delete()
    ray_total = statistics.median(v[2] for v in results["Ray Train TorchTrainer"])
    print(f"\n2-process DDP (gloo, {steps} steps), 2 Ray nodes × 2 CPUs, STRICT_SPREAD; medians of {reps}\n")
    print(f"{'':30} {'submit→processes up':>20} {'submit→first line':>18} {'submit→ended':>13} {'wall vs Ray Train':>18}")
    for name, values in results.items():
        up = [v[0] for v in values if v[0] is not None]
        first, total = statistics.median(v[1] for v in values), statistics.median(v[2] for v in values)
        up_text = f"{statistics.median(up):.2f} s" if up else "n/a"
        print(f"{name:30} {up_text:>20} {first:>16.2f} s {total:>11.2f} s {total / ray_total:>17.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args.reps, args.steps)
        return
    python = ensure_venv()
    sys.exit(in_namespace(python, ["--reps", str(args.reps), "--steps", str(args.steps)]))


if __name__ == "__main__":
    main()
