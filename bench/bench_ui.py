"""The web studio vs `mlflow ui`: the data requests of the runs table and of a run page, on the same data.

    .venv/bin/python bench/bench_ui.py [--runs 10000] [--points 100000] [--reps 7]

Data, written once into both stores (runyard's SQLite workspace; MLflow's SQLite tracking store through its own
store API): ``--runs`` runs in one experiment, each with 3 params and 2 metrics, and one run with a ``--points``-value
metric series. Servers on 127.0.0.1: ``runyard ui`` (uvicorn) and ``mlflow server`` (what ``mlflow ui`` runs, with
the same SQLite file), one at a time. Each page's data requests are made as its page makes them, one after the other; a figure is
the median over ``--reps`` loads (after one warm-up load):

- runs table — runyard: ``/api/summary`` + ``/api/runs?limit=50``; MLflow: ``experiments/search`` +
  ``runs/search`` (100 runs, newest first: its page size);
- run page — runyard: ``/api/runs/ID`` + ``/api/runs/ID/metrics`` (every series, long ones reduced to 2,000
  points) + ``/api/runs/ID/files``; MLflow: ``runs/get`` + ``metrics/get-history-bulk-interval`` (its charts'
  sampled request, 320 points) + ``artifacts/list``, and, as a second figure, ``metrics/get-history`` (every point).

Targets (issue #10): runs table ≤ 300 ms, run page ≤ 500 ms, both ≥ 5x faster than MLflow's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def _get(url: str, body: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def _timed(requests: list) -> float:
    start = time.perf_counter()
    for req in requests:
        req()
    return time.perf_counter() - start


def populate_runyard(folder: Path, runs: int, points: int) -> tuple[str, str]:
    from runyard import Experiment, Workspace
    from runyard.store.metadata import MetricRecord

    ws = Workspace(folder)
    exp = Experiment(ws, "bench")
    store = ws.metadata
    first = None
    for i in range(runs):
        run = exp.start_logging(display_name=f"run-{i}", outputs=False)
        store.log_batch(params=[(run.id, "lr", str(0.001 * (i % 50 + 1))), (run.id, "batch", str(16 << (i % 4))),
                                (run.id, "layers", str(i % 5 + 1))],
                        metrics=[MetricRecord(run.id, "accuracy", i / runs, 0, time.time()),
                                 MetricRecord(run.id, "loss", 1 - i / runs, 0, time.time())])
        run.complete()
        first = first or run.id
    big = exp.start_logging(display_name="long", outputs=False)
    now = time.time()
    store.log_batch(metrics=[MetricRecord(big.id, "loss", 1.0 / (s + 1), s, now) for s in range(points)])
    big.complete()
    return first, big.id


def populate_mlflow(uri: str, runs: int, points: int) -> tuple[str, str]:
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, "./mlartifacts")
    exp_id = store.create_experiment("bench")
    now = int(time.time() * 1000)
    for i in range(runs):
        run = store.create_run(exp_id, "bench", now + i, [], f"run-{i}")
        rid = run.info.run_id
        store.log_batch(rid, metrics=[Metric("accuracy", i / runs, now, 0), Metric("loss", 1 - i / runs, now, 0)],
                        params=[Param("lr", str(0.001 * (i % 50 + 1))), Param("batch", str(16 << (i % 4))),
                                Param("layers", str(i % 5 + 1))], tags=[])
        store.update_run_info(rid, RunStatus.FINISHED, now + i + 1000, f"run-{i}")
    big = store.create_run(exp_id, "bench", now + runs, [], "long").info.run_id
    for start in range(0, points, 1000):
        store.log_batch(big, metrics=[Metric("loss", 1.0 / (s + 1), now, s)
                                      for s in range(start, min(points, start + 1000))], params=[], tags=[])
    store.update_run_info(big, RunStatus.FINISHED, now + runs + 1000, "long")
    return exp_id, big


def _child(queue, fn, args) -> None:
    queue.put(fn(*args))


def _in_child(fn, *args):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="runyard-bench-ui-"))
    procs = []
    try:
        # Written by child processes: the measuring process stays clean (no loggers, no 10,000 run objects)
        t = time.perf_counter()
        _, big = _in_child(populate_runyard, scratch / "ws", args.runs, args.points)
        print(f"runyard: {args.runs} runs + {args.points} points written in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        t = time.perf_counter()
        ml_uri = f"sqlite:///{scratch}/mlflow.db"
        os.chdir(scratch)
        exp_id, ml_big = _in_child(populate_mlflow, ml_uri, args.runs, args.points)
        print(f"MLflow: the same written in {time.perf_counter() - t:.0f} s", file=sys.stderr)

        ry_port, ml_port = _port(), _port()
        ry, ml = f"http://127.0.0.1:{ry_port}", f"http://127.0.0.1:{ml_port}/ajax-api/2.0/mlflow"
        pages = {
            "runs table": {
                "runyard": [lambda: _get(ry + "/api/summary"), lambda: _get(ry + "/api/runs?limit=50")],
                "MLflow": [lambda: _get(ml + "/experiments/search", {"max_results": 1000}),
                           lambda: _get(ml + "/runs/search", {"experiment_ids": [exp_id], "max_results": 100,
                                                              "order_by": ["attributes.start_time DESC"]})]},
            "run page (100k-point metric)": {
                "runyard": [lambda: _get(f"{ry}/api/runs/{big}"), lambda: _get(f"{ry}/api/runs/{big}/metrics"),
                            lambda: _get(f"{ry}/api/runs/{big}/files")],
                "MLflow": [lambda: _get(f"{ml}/runs/get?run_id={ml_big}"),
                           lambda: _get(f"{ml}/metrics/get-history-bulk-interval?run_ids={ml_big}&metric_key=loss"
                                        "&max_results=320"),
                           lambda: _get(f"{ml}/artifacts/list?run_id={ml_big}")],
                "MLflow, every point": [lambda: _get(f"{ml}/runs/get?run_id={ml_big}"),
                                        lambda: _get(f"{ml}/metrics/get-history?run_id={ml_big}&metric_key=loss"
                                                     f"&max_results={args.points}")]},
        }
        servers = {  # one at a time: each server has the machine to itself while it is measured
            "runyard": [sys.executable, "-c", textwrap_server(scratch / "ws", ry_port)],
            "MLflow": [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", ml_uri, "--host", "127.0.0.1",
                       "--port", str(ml_port), "--workers", "1"],
        }
        figures: dict[str, dict[str, float]] = {page: {} for page in pages}
        for server, command in servers.items():
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            _wait(ry_port if server == "runyard" else ml_port, proc, server)
            for page, ways in pages.items():
                for who, requests in ways.items():
                    if who.split(",")[0] != server:
                        continue
                    _timed(requests)  # warm-up
                    figures[page][who] = statistics.median(_timed(requests) for _ in range(args.reps)) * 1000
            _stop(proc)
        print()
        print(f"| page ({args.runs:,} runs) | runyard ms | MLflow ms | runyard faster by |")
        print("|---|---|---|---|")
        for page, found in figures.items():
            ours = found.pop("runyard")
            for who, theirs in found.items():
                print(f"| {page} | {ours:.1f} | {who}: {theirs:.1f} | {theirs / ours:.1f}x |")
    finally:
        for p in procs:
            _stop(p)
        shutil.rmtree(scratch, ignore_errors=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def textwrap_server(ws_path: Path, port: int) -> str:
    return (f"import uvicorn\nfrom runyard import Workspace\nfrom runyard.ui.app import create_app\n"
            f"uvicorn.run(create_app(Workspace({str(ws_path)!r})), host='127.0.0.1', port={port}, log_level='warning')\n")


if __name__ == "__main__":
    main()
