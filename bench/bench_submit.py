"""Submission overhead: runyard vs `mlflow run` vs `ray job submit`, and re-snapshot time vs a `find -newer` pass.

    python bench/bench_submit.py [--reps 5] [--files 5000]

Overhead = median wall time from submit to a finished run of a script that only prints, minus the median wall
time of `python script.py`. Each tool is measured the way its users call it: from the command line (a fresh
process: `runyard submit --wait`, `mlflow run --env-manager local`, `ray job submit`) and from Python in a warm
process (`Experiment.submit` + `wait_for_completion`, `mlflow.projects.run`, Ray's `JobSubmissionClient`).
The Ray head runs inside a loopback-only network namespace (needs root and `ip`), as the project's network
rule requires; Ray rows are skipped with a reason when that is not possible or Ray is not installed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
RAY_PORT, DASHBOARD_PORT = 6390, 8275


def timed(cmd: list[str], reps: int, **kw) -> float:
    """Median wall time of a command (one untimed warm-up run first: page cache, database creation)."""
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        if i:
            times.append(elapsed)
    return statistics.median(times)


def runyard_api(root: Path, reps: int) -> float:
    from runyard import Experiment, ScriptRunConfig, Workspace

    exp = Experiment(Workspace(root / "ws-api"), "bench")
    config = ScriptRunConfig(source_directory=root / "proj", script="script.py")
    times = []
    for i in range(reps + 1):
        start = time.perf_counter()
        run = exp.submit(config)
        run.wait_for_completion()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def mlflow_api(root: Path, reps: int) -> float:
    code = f"""
import json, statistics, time, mlflow, mlflow.projects
mlflow.set_tracking_uri("sqlite:///{root}/mlflow-api.db")
times = []
for i in range({reps} + 1):
    start = time.perf_counter()
    mlflow.projects.run("{root}/proj", env_manager="local", synchronous=True)
    if i:
        times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


class RayHead:
    """A Ray head in its own loopback-only network namespace (Ray binds every interface and probes the internet)."""

    def __init__(self) -> None:
        self.ns = f"runyard-bench-{os.getpid()}"

    def why_not(self) -> str | None:
        if not (BIN / "ray").exists():
            return "ray is not installed (pip install 'runyard[bench]')"
        if os.geteuid() != 0 or not shutil.which("ip"):
            return "needs root and `ip` for a loopback-only network namespace"
        return None

    def exec(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *cmd]

    def __enter__(self) -> "RayHead":
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(self.exec(["ip", "link", "set", "lo", "up"]), check=True)
        subprocess.run(self.exec([str(BIN / "ray"), "start", "--head", f"--port={RAY_PORT}", "--num-cpus=2",
                                  "--dashboard-host=127.0.0.1", f"--dashboard-port={DASHBOARD_PORT}",
                                  "--include-dashboard=true", "--disable-usage-stats"]),
                       check=True, capture_output=True)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(self.exec([str(BIN / "ray"), "stop", "--force"]), capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.ns], capture_output=True)

    def cli(self, root: Path, reps: int) -> float:
        return timed(self.exec([str(BIN / "ray"), "job", "submit", f"--address=http://127.0.0.1:{DASHBOARD_PORT}",
                                "--working-dir", str(root / "proj"), "--", "python", "script.py"]), reps, cwd=root)

    def api(self, root: Path, reps: int) -> float:
        code = f"""
import json, statistics, time
from ray.job_submission import JobSubmissionClient, JobStatus
client = JobSubmissionClient("http://127.0.0.1:{DASHBOARD_PORT}")
times = []
for i in range({reps} + 1):
    start = time.perf_counter()
    job = client.submit_job(entrypoint="python script.py", runtime_env={{"working_dir": "{root}/proj"}})
    while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        time.sleep(0.02)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED
    if i:
        times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""
        proc = subprocess.run(self.exec([sys.executable, "-c", code]), capture_output=True, text=True, cwd=root)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])


def stat_walk(folder: Path) -> int:
    """The least a Python program can do to notice a changed file: os.scandir and one stat per file."""
    count, stack = 0, [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(entry.path)
                else:
                    entry.stat()
                    count += 1
    return count


def snapshot_figures(root: Path, files: int, reps: int) -> tuple[float, float, float, float]:
    """(first snapshot, unchanged re-snapshot, `find -newer` pass, bare Python stat walk) in seconds."""
    from runyard.store.artifacts import FsspecArtifactStore
    from runyard.store import snapshots as snapshot

    proj = root / "big"
    for i in range(files):
        path = proj / f"pkg{i % 50}" / f"sub{i % 7}" / f"module_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {i}\n" * (1 + i % 40))
    (proj / ".gitignore").write_text("*.log\nbuild/\n__pycache__/\n")
    reference = root / "reference"
    reference.touch()
    store = FsspecArtifactStore(str(root / "artifacts"))
    cache = root / "snapcache"
    start = time.perf_counter()
    snapshot.store(snapshot.take(proj, cache_dir=cache), store)
    first = time.perf_counter() - start
    again, find, floor = [], [], []
    for _ in range(reps):
        start = time.perf_counter()
        stat_walk(proj)
        floor.append(time.perf_counter() - start)
        start = time.perf_counter()
        snapshot.store(snapshot.take(proj, cache_dir=cache), store)
        again.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(["find", str(proj), "-newer", str(reference)], capture_output=True, check=True)
        find.append(time.perf_counter() - start)
    return first, statistics.median(again), statistics.median(find), statistics.median(floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    console = Console(width=120)
    root = Path(tempfile.mkdtemp(prefix="runyard-bench-submit-"))
    try:
        (root / "proj").mkdir()
        (root / "proj" / "script.py").write_text('print("hello from the benchmark")\n')
        (root / "proj" / "MLproject").write_text('name: bench\nentry_points:\n  main:\n    command: "python script.py"\n')
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow-cli.db", "RAY_USAGE_STATS_ENABLED": "0"}
        bare = timed([sys.executable, "script.py"], args.reps, cwd=root / "proj")
        rows: list[tuple[str, str, float | None, str]] = []
        console.print(f"bare `python script.py`: {bare * 1000:.0f} ms (median of {args.reps})")
        subprocess.run([str(BIN / "runyard"), "init", str(root / "ws-cli")], check=True, capture_output=True)  # -w names
        rows.append(("runyard", "CLI: runyard submit --wait", timed(
            [str(BIN / "runyard"), "-w", str(root / "ws-cli"), "submit", "-s", str(root / "proj"), "script.py", "--wait"],
            args.reps, cwd=root), ""))
        rows.append(("runyard", "API: Experiment.submit + wait_for_completion", runyard_api(root, args.reps), ""))
        if (BIN / "mlflow").exists():
            rows.append(("mlflow", "CLI: mlflow run --env-manager local", timed(
                [str(BIN / "mlflow"), "run", str(root / "proj"), "--env-manager", "local"], args.reps, cwd=root, env=env), ""))
            rows.append(("mlflow", "API: mlflow.projects.run (synchronous, no detach)", mlflow_api(root, args.reps), ""))
        else:
            rows.append(("mlflow", "mlflow run", None, "mlflow is not installed (pip install 'runyard[mlflow]')"))
        ray = RayHead()
        reason = ray.why_not()
        if reason:
            rows.append(("ray", "ray job submit", None, reason))
        else:
            with ray:
                rows.append(("ray", "CLI: ray job submit (local head)", ray.cli(root, args.reps), ""))
                rows.append(("ray", "API: JobSubmissionClient.submit_job + poll", ray.api(root, args.reps), ""))

        table = Table("tool", "path", "wall (median)", "overhead", "runyard's overhead is", title="submission overhead")
        ours = {path.split(":")[0]: wall - bare for tool, path, wall, _ in rows if tool == "runyard" and wall}
        for tool, path, wall, note in rows:
            if wall is None:
                table.add_row(tool, path, "-", "-", note)
                continue
            overhead = wall - bare
            kind = path.split(":")[0]
            ratio = "" if tool == "runyard" else f"{overhead / ours[kind]:.1f}x lower" if overhead >= ours[kind] \
                else f"{ours[kind] / overhead:.1f}x higher"
            table.add_row(tool, path, f"{wall * 1000:.0f} ms", f"{overhead * 1000:.0f} ms", ratio)
        console.print(table)

        with warnings.catch_warnings():  # the project is above the 2,000-file soft limit on purpose
            warnings.simplefilter("ignore")
            first, again, find, floor = snapshot_figures(root, args.files, args.reps)
        snap = Table("what", "time", "vs find -newer", title=f"snapshot of a {args.files}-file project")
        snap.add_row("first snapshot (hash + store every file)", f"{first * 1000:.0f} ms", f"{first / find:.1f}x")
        snap.add_row("re-snapshot, nothing changed", f"{again * 1000:.1f} ms", f"{again / find:.2f}x")
        snap.add_row("find PROJECT -newer REF (one stat per file)", f"{find * 1000:.1f} ms", "1x")
        snap.add_row("bare Python scandir + stat walk (the floor)", f"{floor * 1000:.1f} ms", f"{floor / find:.2f}x")
        console.print(snap)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
