"""Metric logging throughput: runyard (SQLite, PostgreSQL) vs MLflow's local SQLite store, measured in one run.

    python bench/bench_logging.py [--values 100000] [--pg-uri postgresql+psycopg://...] [--mlflow-values 10000]

Each measurement runs in a fresh interpreter with a fresh store. For every row:
  accepted/s  values handed to the logging call per second (the time the training loop spends logging);
  stored after complete  seconds from complete()/end of logging until every value is in the store;
  end-to-end/s  values / (logging time + time to stored);
  cost/call  extra µs per step of a training loop (a ~75 µs numpy step) that logs one value per step;
  slowdown  that extra time relative to the same loop without logging.
MLflow's per-call path is measured on fewer values (it is slow); rates are per second either way.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

# A stand-in training step: a 128x128 matmul, about 75 µs here — a fast step (13k steps/s), so the slowdown
# shown is close to the worst a real loop that logs once per step would see.
STEP = textwrap.dedent(
    """
    import numpy as np, time
    _a = np.random.default_rng(0).random((128, 128))
    def step(i):
        return float((_a @ _a)[0, 0]) + i
    def _chunk(n, log):
        t = time.perf_counter()
        for i in range(n):
            v = step(i)
            if log is not None:
                log(v)
        return time.perf_counter() - t
    def loops(n, log, chunks=10):
        # Bare and logging chunks alternate so drift (clock, cache, other load) falls on both alike.
        bare = logged = 0.0
        for _ in range(chunks):
            bare += _chunk(n // chunks, None)
            logged += _chunk(n // chunks, log)
        return bare, logged
    """
)

RUNYARD = STEP + textwrap.dedent(
    """
    import json, sys, time
    from runyard import Workspace, Experiment
    n, folder, uri = int(sys.argv[1]), sys.argv[2], sys.argv[3] or None
    ws = Workspace(folder, tracking_uri=uri)
    run = Experiment(ws, "bench").start_logging(outputs=False)
    bare, logged = loops(n, lambda v: run.log("loss", v))
    t = time.perf_counter(); run.complete(); stored = time.perf_counter() - t
    count = len(run.get_metrics()["loss"])
    # Accepted/s without the training work: the logging call alone.
    run2 = Experiment(ws, "bench").start_logging(outputs=False)
    t = time.perf_counter()
    for i in range(n):
        run2.log("loss", 0.5)
    accept = time.perf_counter() - t
    run2.complete()
    print(json.dumps(dict(n=n, accept=accept, stored=stored, bare=bare, logged=logged, count=count)))
    """
)

MLFLOW_SINGLE = STEP + textwrap.dedent(
    """
    import json, sys, time, logging
    logging.disable(logging.WARNING)
    import mlflow
    n, uri, preexisting = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    mlflow.set_tracking_uri(uri)
    if preexisting:
        mlflow.start_run(run_id=preexisting)
    else:
        mlflow.set_experiment("bench"); mlflow.start_run()
    bare, logged = loops(n, lambda v: mlflow.log_metric("loss", v))
    t = time.perf_counter(); rid = mlflow.active_run().info.run_id; mlflow.end_run(); stored = time.perf_counter() - t
    count = len(mlflow.MlflowClient().get_metric_history(rid, "loss"))
    t = time.perf_counter()
    with mlflow.start_run(run_id=rid):
        for i in range(n):
            mlflow.log_metric("loss2", 0.5)
        accept = time.perf_counter() - t
    print(json.dumps(dict(n=n, accept=accept, stored=stored, bare=bare, logged=logged, count=count)))
    """
)

MLFLOW_BATCH = textwrap.dedent(
    """
    import json, sys, time, logging
    logging.disable(logging.WARNING)
    import mlflow
    from mlflow.entities import Metric
    n, uri = int(sys.argv[1]), sys.argv[2]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench")
    client = mlflow.MlflowClient()
    with mlflow.start_run() as r:
        now = int(time.time() * 1000)
        metrics = [Metric("loss", i * 0.5, now, i) for i in range(n)]
        t = time.perf_counter()
        for i in range(0, n, 1000):  # MLflow accepts at most 1000 metrics per log_batch call
            client.log_batch(r.info.run_id, metrics=metrics[i:i + 1000])
        elapsed = time.perf_counter() - t
    count = len(client.get_metric_history(r.info.run_id, "loss"))
    print(json.dumps(dict(n=n, accept=elapsed, stored=0.0, bare=None, logged=None, count=count)))
    """
)


def measure(code: str, *args: str, env: dict | None = None) -> dict:
    # One BLAS thread: the step's cost stays steady instead of depending on which core the logger thread uses.
    pinned = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **pinned, **(env or {})}, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--values", type=int, default=100_000, help="values logged by runyard and by mlflow log_batch")
    ap.add_argument("--mlflow-values", type=int, default=2_000, help="values for MLflow's one-call-per-value path")
    ap.add_argument("--pg-uri", default=os.environ.get("RUNYARD_TEST_DB_URI"), help="PostgreSQL URL for the runyard row")
    args = ap.parse_args()

    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("runyard run.log, SQLite", measure(RUNYARD, str(args.values), f"{tmp}/ry-sqlite", "")))
        if args.pg_uri:
            import sqlalchemy as sa

            engine = sa.create_engine(args.pg_uri)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench"))
            sep = "&" if "?" in args.pg_uri else "?"
            pg = f"{args.pg_uri}{sep}options=-csearch_path%3Dbench"
            rows.append(("runyard run.log, PostgreSQL", measure(RUNYARD, str(args.values), f"{tmp}/ry-pg", pg)))
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS bench CASCADE"))
        try:
            import mlflow  # noqa: F401
        except ImportError:
            print("mlflow is not installed: pip install 'runyard[mlflow]' to compare", file=sys.stderr)
        else:
            ml_uri = f"sqlite:///{tmp}/mlflow.db"
            rows.append(("mlflow.log_metric per call, sqlite:///", measure(MLFLOW_SINGLE, str(args.mlflow_values), ml_uri, "")))
            rows.append(("mlflow log_batch(1000), sqlite:///", measure(MLFLOW_BATCH, str(args.values), ml_uri)))
            from runyard import Experiment, Workspace

            ws = Workspace(f"{tmp}/ry-bridge")
            bridge_run = Experiment(ws, "bench").start_logging(outputs=False)
            rows.append(("mlflow.log_metric via runyard:// bridge", measure(
                MLFLOW_SINGLE, str(args.values), f"runyard://{ws.path}", bridge_run.id,
                env={"RUNYARD_WORKSPACE": str(ws.path)})))
            bridge_run.complete()

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"metric logging, {args.values:,} values (MLflow per-call: {args.mlflow_values:,})")
    for col in ("path", "values", "accepted/s", "stored after complete", "end-to-end/s", "cost/call", "slowdown",
                "all stored"):
        table.add_column(col, justify="left" if col == "path" else "right")
    e2e = {}
    for name, r in rows:
        e2e[name] = r["n"] / (r["accept"] + r["stored"])
        cost = f"{(r['logged'] - r['bare']) / r['n'] * 1e6:.1f} µs" if r["bare"] else "n/a"
        slowdown = f"{(r['logged'] - r['bare']) / r['bare'] * 100:+.1f}%" if r["bare"] else "n/a"
        table.add_row(name, f"{r['n']:,}", f"{r['n'] / r['accept']:,.0f}", f"{r['stored']:.2f} s",
                      f"{e2e[name]:,.0f}", cost, slowdown, "yes" if r["count"] == r["n"] else f"NO ({r['count']:,})")
    console = Console(width=160)
    console.print(table)
    best_mlflow = max((v for k, v in e2e.items() if k.startswith("mlflow") and "bridge" not in k), default=None)
    if best_mlflow:
        for name, v in e2e.items():
            if name.startswith("runyard"):
                console.print(f"{name}: {v / best_mlflow:.1f}x MLflow's best end-to-end path")


if __name__ == "__main__":
    main()
