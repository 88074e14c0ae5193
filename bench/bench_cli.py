"""CLI latency: how long each everyday command takes in a fresh process, against ``python -c pass``.

    .venv/bin/python bench/bench_cli.py [--reps 10]

A workspace with one experiment and one finished run (a script that logs one metric) is made first; then each
command runs ``--reps`` times (after one untimed warm-up) and the median wall time is printed, with what it costs
beyond starting the interpreter, and where its time goes: ``import sqlalchemy`` (the metadata store's engine) and
``import runyard.cli.main`` (typer, rich and the command modules) measured the same way. The goal (issue 23) is
0.2 s for read commands on a 2-core machine.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def median_wall(cmd: list[str], reps: int, cwd: Path) -> float:
    times = []
    for i in range(reps + 1):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        if i:  # the first is a warm-up (page cache)
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    runyard = str(BIN / "runyard")
    root = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    (root / "train.py").write_text("from runyard import Run\nRun.get_context().log('acc', 0.9)\nprint('done')\n")
    subprocess.run([runyard, "init", str(root)], check=True, capture_output=True)
    out = subprocess.run([runyard, "submit", "train.py", "--experiment", "bench", "--wait"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    run_id = next(word for line in out.splitlines() for word in line.split() if word.startswith("bench_"))

    python = sys.executable
    rows = [
        ("python -c pass", [python, "-c", "pass"]),
        ("python -c 'import sqlalchemy'", [python, "-c", "import sqlalchemy"]),
        ("python -c 'import runyard.cli.main'", [python, "-c", "import runyard.cli.main"]),
        ("runyard --help", [runyard, "--help"]),
        ("runyard experiments", [runyard, "experiments"]),
        ("runyard runs list", [runyard, "runs", "list"]),
        ("runyard metrics RUN", [runyard, "metrics", run_id]),
        ("runyard logs RUN", [runyard, "logs", run_id]),
        ("runyard submit --wait", [runyard, "submit", "train.py", "--experiment", "bench", "--wait"]),
    ]
    results = {name: median_wall(cmd, args.reps, root) for name, cmd in rows}
    floor = results["python -c pass"]
    print(f"\nmedian of {args.reps} fresh processes each (one warm-up first); one run in the workspace\n")
    print(f"{'':38} {'wall':>8} {'beyond python':>14}")
    for name, wall in results.items():
        print(f"{name:38} {wall * 1000:6.0f} ms {(wall - floor) * 1000:11.0f} ms")


if __name__ == "__main__":
    main()
