"""Distributed launch overhead: runyard vs bare `torchrun --nproc_per_node 2` and vs bare `mpirun -np 2`.

    python bench/bench_distributed.py [--reps 3] [--steps 300]

The same scripts run both ways, with the same interpreter (a runyard-built PyTorch environment for DDP; this
interpreter with mpi4py for MPI): time to first step (from the launch call to rank 0's first training step), total
wall time (launch → job ended; for runyard, submit → run Completed, outputs and logs uploaded), and rank 0's training
throughput. Targets: runyard's extra wall time ≤ 0.5 s; throughput ratio ≥ 0.98. Loopback only; packages from this
machine's local sources.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

DDP = """
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.rand(128, 64), torch.rand(128, 1)
steps = int(sys.argv[1])
for step in range(steps):
    opt.zero_grad(); ((model(x) - y) ** 2).mean().backward(); opt.step()
    if step == 0:
        first, t0 = time.time(), time.perf_counter()
if rank == 0:
    print(f"FIRST_STEP {first:.6f} RATE {(steps - 1) / (time.perf_counter() - t0):.2f}", flush=True)
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)  # torch 2.13 + gloo here: the interpreter's exit sometimes aborts ("terminate called without an active exception")
"""

MPI = """
import sys, time, numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
buf, out = np.random.rand(1 << 16), np.empty(1 << 16)
steps = int(sys.argv[1])
for step in range(steps):
    comm.Allreduce(buf, out)
    if step == 0:
        first, t0 = time.time(), time.perf_counter()
if comm.Get_rank() == 0:
    print(f"FIRST_STEP {first:.6f} RATE {(steps - 1) / (time.perf_counter() - t0):.2f}", flush=True)
"""
_FIGURES = re.compile(r"FIRST_STEP (\d+\.\d+) RATE (\d+\.\d+)")


def bare(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, float]:
    start = time.time()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[:3000]}")
    m = _FIGURES.search(proc.stdout)
    return float(m.group(1)) - start, wall, float(m.group(2))


def with_runyard(ws, config) -> tuple[float, float, float]:
    from runyard import Experiment
    from runyard.compute import get_target

    start = time.time()
    run = Experiment(ws, "bench").submit(config)
    details = run.wait_for_completion(raise_on_error=True)
    wall = time.time() - start
    m = _FIGURES.search("".join(get_target(ws, "local").log_iter(run.id, rank=0)))
    assert details["status"] == "Completed"
    return float(m.group(1)) - start, wall, float(m.group(2))


def paired(bare_fn, runyard_fn, reps: int) -> tuple[tuple, tuple]:
    """Medians of (time to first step, wall, rate) for both, runs interleaved: on 2 busy cores the throughput of
    two polling ranks swings by 1.5x from run to run, so drift must hit both sides alike."""
    bare_fn(), runyard_fn()  # warm-up (page cache, environment)
    runs = [(bare_fn(), runyard_fn()) for _ in range(reps)]
    return tuple(tuple(statistics.median(r[side][i] for r in runs) for i in range(3)) for side in (0, 1))


def _current_with(variables: dict):
    from runyard import Environment

    env = Environment.from_existing_interpreter("current")
    env.environment_variables = variables
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    from bench_environments import local_sources

    os.environ.update(local_sources())
    from runyard import MpiConfiguration, PyTorchConfiguration, ScriptRunConfig, Workspace
    from runyard.runtime.resources import free_ports
    from runyard import environments
    from runyard.train.dnn import PyTorch

    root = Path(tempfile.mkdtemp(prefix="runyard-bench-dist-"))
    (root / "proj").mkdir()
    (root / "proj" / "ddp.py").write_text(DDP)
    (root / "proj" / "mpi.py").write_text(MPI)
    ws = Workspace(root / "ws")
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    ddp = PyTorch(root / "proj", entry_script="ddp.py", arguments=[args.steps], environment_variables={"OMP_NUM_THREADS": "1"},
                  distributed_training=PyTorchConfiguration("Gloo", process_count=2))
    plan = environments.plan(environments.env_root(ws), dict(ddp.to_job_spec().environment), tracking_uri=ws.tracking_uri)
    environments.ensure(plan, lambda line: None)
    torchrun = str(Path(plan.python).parent / "torchrun")
    bare_ddp, ry_ddp = paired(lambda: bare(
        [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_ports(1)[0]),
         "ddp.py", str(args.steps)], env, root / "proj"), lambda: with_runyard(ws, ddp), args.reps)
    rows += [("DDP 2 procs (gloo)", "torchrun --nproc_per_node 2", bare_ddp),
             ("DDP 2 procs (gloo)", "runyard (PyTorchConfiguration)", ry_ddp)]

    if shutil.which("mpirun"):
        mpirun = ["mpirun", *(["--allow-run-as-root"] if os.geteuid() == 0 else []), "-np", "2", "-H", "127.0.0.1:2",
                  "--bind-to", "none", "--mca", "btl", "self,vader", "--mca", "oob_tcp_if_include", "lo",
                  "-x", "OMP_NUM_THREADS"]
        mpi = ScriptRunConfig(root / "proj", "mpi.py", arguments=[args.steps * 10],
                              distributed_job_config=MpiConfiguration(2),
                              environment=_current_with({"OMP_NUM_THREADS": "1"}))
        bare_mpi, ry_mpi = paired(lambda: bare([*mpirun, sys.executable, "-u", "mpi.py", str(args.steps * 10)], env,
                                               root / "proj"), lambda: with_runyard(ws, mpi), args.reps)
        rows += [("mpi4py allreduce 2 ranks", "mpirun -np 2", bare_mpi),
                 ("mpi4py allreduce 2 ranks", "runyard (MpiConfiguration)", ry_mpi)]

    table = Table(title=f"distributed launch (median of {args.reps}; 2-process jobs)")
    for col in ("job", "launcher", "time to first step", "wall time", "rank 0 steps/s"):
        table.add_column(col)
    for job, launcher, (first, wall, rate) in rows:
        table.add_row(job, launcher, f"{first:.2f} s", f"{wall:.2f} s", f"{rate:.1f}")
    ratios = Table(title="runyard vs the bare launcher")
    for col in ("job", "extra time to first step", "extra wall time (target ≤ 0.5 s)", "throughput ratio (target ≥ 0.98)"):
        ratios.add_column(col)
    for (job, _, bare_fig), (_, _, ry_fig) in zip(rows[::2], rows[1::2]):
        ratios.add_row(job, f"{ry_fig[0] - bare_fig[0]:+.2f} s", f"{ry_fig[1] - bare_fig[1]:+.2f} s",
                       f"{ry_fig[2] / bare_fig[2]:.3f}")
    console = Console(width=150)
    console.print(table)
    console.print(ratios)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
