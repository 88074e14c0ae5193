"""The walkthroughs' training through runyard vs the same scripts run bare, on the same data and interpreter.

    .venv/bin/python bench/bench_walkthroughs.py [--reps 3] [--train 10000]

- tf-mnist: ``examples/tf-mnist/tf_mnist.py`` (5 epochs) run with the TensorFlow environment's python directly, vs
  a ``TensorFlow`` estimator submitted to the local target with the data folder mounted from the default datastore
  (submit → Completed: snapshot, supervisor, environment check, mount, outputs and logs uploaded).
- pytorch-ddp: ``examples/pytorch-ddp/pytorch_mnist.py`` (2 epochs) under bare ``torchrun --standalone
  --nproc_per_node 2``, vs the ``PyTorch`` estimator with ``PyTorchConfiguration(process_count=2)``.

Both sides use the environments runyard built (built once before timing, from this machine's local package sources).
Figures are medians of ``--reps``; the ratio is bare / runyard (1.00: no overhead). Loopback only.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "common"))

import utils  # noqa: E402 - examples/common/utils.py

from runyard import Experiment, PyTorchConfiguration, Workspace  # noqa: E402
from runyard.config.package_index import pip_settings  # noqa: E402
from runyard.train.dnn import PyTorch, TensorFlow  # noqa: E402

TF_ARGS = ["--batch-size", "50", "--first-layer-neurons", "300", "--second-layer-neurons", "100",
           "--learning-rate", "0.01", "--epochs", "5"]
DDP_ARGS = ["--epochs", "2"]


def local_sources() -> None:
    """Environments build from this machine's file:// indexes only (the network rule)."""
    settings = pip_settings()
    local = [u for u in (settings.index_url, *settings.extra_index_urls) if u and u.startswith("file://")]
    if local:
        os.environ.update(PIP_INDEX_URL=local[0], PIP_EXTRA_INDEX_URL=" ".join(local[1:]), UV_OFFLINE="1",
                          UV_PYTHON_DOWNLOADS="never")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bare(argv: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the scripts import runyard: outside a run it logs offline
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def submitted(ws: Workspace, estimator) -> str:
    run = Experiment(ws, "bench-walkthroughs").submit(estimator)
    details = run.wait_for_completion(raise_on_error=True)
    return details["status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--train", type=int, default=10_000, help="training images (test: a tenth)")
    args = parser.parse_args()
    local_sources()
    scratch = Path(tempfile.mkdtemp(prefix="runyard-bench-walk-"))
    try:
        ws = Workspace(scratch / "ws")
        data = utils.write_mnist(scratch / "data", args.train, args.train // 10)
        ds = ws.get_default_datastore()
        ds.upload(src_dir=str(data), target_path="mnist", overwrite=True)
        tf_folder = utils.script_folder(scratch / "tf", ROOT / "examples" / "tf-mnist" / "tf_mnist.py")
        ddp_folder = utils.script_folder(scratch / "ddp", ROOT / "examples" / "pytorch-ddp" / "pytorch_mnist.py")

        def tf_estimator():
            return TensorFlow(source_directory=str(tf_folder), entry_script="tf_mnist.py", compute_target="local",
                              arguments=["--data-folder", ds.path("mnist").as_mount(), *TF_ARGS])

        def ddp_estimator():
            return PyTorch(source_directory=str(ddp_folder), entry_script="pytorch_mnist.py", compute_target="local",
                           arguments=["--data-folder", ds.path("mnist").as_mount(), *DDP_ARGS], pip_packages=["numpy"],
                           distributed_training=PyTorchConfiguration(communication_backend="Gloo", process_count=2))

        # Warm-up: build both environments (not timed), and learn their interpreters.
        tf_python = _python_of(ws, tf_estimator())
        torch_python = _python_of(ws, ddp_estimator())
        torchrun = str(Path(torch_python).with_name("torchrun"))
        rows = []
        cases = [
            ("tf-mnist (1 process, 5 epochs)", "python tf_mnist.py",
             lambda: bare([tf_python, "tf_mnist.py", "--data-folder", str(data), *TF_ARGS], tf_folder),
             lambda: submitted(ws, tf_estimator())),
            ("pytorch-ddp (2 processes, 2 epochs)", "torchrun --nproc_per_node 2",
             lambda: bare([torchrun, "--standalone", "--nproc_per_node", "2", "pytorch_mnist.py", "--data-folder",
                           str(data), *DDP_ARGS], ddp_folder),
             lambda: submitted(ws, ddp_estimator())),
        ]
        for name, peer, run_bare, run_runyard in cases:
            bare_times, runyard_times = [], []
            for _ in range(args.reps):  # alternate, so drift affects both alike
                bare_times.append(timed(run_bare))
                runyard_times.append(timed(run_runyard))
            b, r = statistics.median(bare_times), statistics.median(runyard_times)
            rows.append((name, peer, b, r, b / r, r - b))
        table = Table(title=f"walkthrough training, bare vs runyard (medians of {args.reps}; {args.train:,} images)")
        for col in ("walkthrough", "bare peer", "bare s", "runyard s", "bare/runyard", "runyard extra s"):
            table.add_column(col, justify="left" if col in ("walkthrough", "bare peer") else "right")
        for name, peer, b, r, ratio, extra in rows:
            table.add_row(name, peer, f"{b:.2f}", f"{r:.2f}", f"{ratio:.2f}x", f"{extra:+.2f}")
        Console(width=130).print(table)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _python_of(ws: Workspace, estimator) -> str:
    """Submit once (builds the environment) and answer the interpreter the run used."""
    from runyard.environments import env_root, plan

    run = Experiment(ws, "bench-warmup").submit(estimator)
    run.wait_for_completion(raise_on_error=True)
    spec = run.get_details()["runDefinition"]["environment"]
    return plan(env_root(ws), spec, False, ws.tracking_uri).python


if __name__ == "__main__":
    main()
