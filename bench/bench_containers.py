"""Container-run overhead: runyard's submit → Completed of a script in the base image vs a bare `docker run`.

    eval "$(bash scripts/dockerd.sh start)"; runyard image build-base
    python bench/bench_containers.py [--reps 7]

Overhead = median wall time from `Experiment.submit` to `wait_for_completion` returning (the run's environment is
built by an untimed first run: the client's venv inside the image, cached) minus the median wall time of a bare
`docker run --rm --init --network host IMAGE python3 script.py` of the same script, measured in the same process,
on the same engine. Also shown: the same from the command line (`runyard submit --docker-image … --wait`, a fresh
process) and runyard's own overhead without a container, for reference. Target: ≤ 0.3 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent


def median_of(fn, reps: int) -> float:
    fn()  # warm-up: page cache, the environment's first build, the database's creation
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from runyard import Environment, Experiment, ScriptRunConfig, Workspace
    from runyard.environments import BASE_IMAGE, engine

    engine()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="runyard-bench-containers-") as tmp:
        root = Path(tmp)
        (root / "proj").mkdir()
        (root / "proj" / "hello.py").write_text("print('hello from the container')\n")
        bare_cmd = ["docker", "run", "--rm", "--init", "--network", "host", "-v", f"{root}/proj:{root}/proj",
                    "-w", f"{root}/proj", BASE_IMAGE, "python3", "hello.py"]

        def bare() -> None:
            subprocess.run(bare_cmd, check=True, capture_output=True)

        ws = Workspace(root / "ws")
        exp = Experiment(ws, "bench")
        env = Environment.from_docker_image("base", BASE_IMAGE)

        def runyard_api() -> None:
            run = exp.submit(ScriptRunConfig(str(root / "proj"), "hello.py", environment=env))
            assert run.wait_for_completion()["status"] == "Completed"

        def runyard_plain() -> None:
            run = exp.submit(ScriptRunConfig(str(root / "proj"), "hello.py"))
            assert run.wait_for_completion()["status"] == "Completed"

        cli = [str(BIN / "runyard"), "-w", str(ws.path), "submit", "hello.py", "-s", str(root / "proj"),
               "--docker-image", BASE_IMAGE, "--wait"]

        def runyard_cli() -> None:
            subprocess.run(cli, check=True, capture_output=True)

        python_cmd = [sys.executable, str(root / "proj" / "hello.py")]

        def bare_python() -> None:
            subprocess.run(python_cmd, check=True, capture_output=True)

        figures = {name: median_of(fn, args.reps) for name, fn in [
            ("docker run --rm (bare)", bare), ("runyard API, in the base image", runyard_api),
            ("runyard CLI --docker-image --wait", runyard_cli), ("python script.py (bare)", bare_python),
            ("runyard API, no container", runyard_plain)]}
    table = Table(title=f"container-run overhead (median of {args.reps}, engine {os.environ.get('DOCKER_HOST', 'default')})")
    table.add_column("what")
    table.add_column("wall s", justify="right")
    table.add_column("overhead s", justify="right")
    bare_docker, bare_py = figures["docker run --rm (bare)"], figures["python script.py (bare)"]
    for name, value in figures.items():
        base = bare_py if "no container" in name or "python" in name else bare_docker
        table.add_row(name, f"{value:.3f}", "" if "bare" in name else f"{value - base:+.3f}")
    console.print(table)
    overhead = figures["runyard API, in the base image"] - bare_docker
    console.print(f"runyard's container-run overhead: {overhead:.3f} s over a bare docker run "
                  f"({'within' if overhead <= 0.3 else 'over'} the 0.3 s target)")


if __name__ == "__main__":
    main()
