"""Run listing at scale: runyard's indexed, paginated queries vs MLflow's search_runs, on the same data.

    python bench/bench_listing.py [--runs 10000] [--pg-uri postgresql+psycopg://...]

Both stores get N runs in one experiment, each with 5 metrics x 10 values, 3 params and 2 tags (created through
each project's own API, timed). Then, median of 5:
  newest 50     the page a run table shows: newest 50 runs with their latest metrics, params and tags;
  page at N/2   the same, 50 runs from the middle (runyard: offset; MLflow: its page token walk);
  one history   every value of one metric of one run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def timed(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def runyard_rows(n: int, url: str | None, folder: str) -> dict:
    from runyard import RunStatus, Workspace
    from runyard.store.metadata import MetricRecord

    store = Workspace(folder, tracking_uri=url).metadata
    exp = store.get_or_create_experiment("listing")
    t = time.perf_counter()
    for i in range(n):
        run = store.create_run(exp.id, status=RunStatus.COMPLETED, tags={"team": "vision", "i": str(i)})
        now = time.time()
        store.log_batch(
            metrics=[MetricRecord(run.run_id, f"m{k}", (i + s) * 0.01, s, now + s) for k in range(5) for s in range(10)],
            params=[(run.run_id, f"p{k}", str(i * k)) for k in range(3)],
        )
    create = time.perf_counter() - t

    def page(offset: int) -> None:
        runs = store.list_runs(experiment_id=exp.id, limit=50, offset=offset)  # tags, params, properties included
        store.get_latest_metrics([r.run_id for r in runs])

    one = store.list_runs(experiment_id=exp.id, limit=1)[0].run_id
    return {
        "create": n / create,
        "newest 50": timed(lambda: page(0)),
        "page at N/2": timed(lambda: page(n // 2)),
        "one history": timed(lambda: store.get_metric_history([one], ["m0"])),
    }


def mlflow_rows(n: int, folder: str) -> dict:
    import logging

    logging.disable(logging.WARNING)
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(f"sqlite:///{folder}/mlflow.db")
    exp_id = client.create_experiment("listing")
    t = time.perf_counter()
    for i in range(n):
        run = client.create_run(exp_id, tags={"team": "vision", "i": str(i)})
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"m{k}", (i + s) * 0.01, now + s, s) for k in range(5) for s in range(10)],
            params=[Param(f"p{k}", str(i * k)) for k in range(3)],
        )
        client.set_terminated(run.info.run_id)
    create = time.perf_counter() - t

    def newest() -> None:
        client.search_runs([exp_id], max_results=50, order_by=["attributes.start_time DESC"])

    def middle() -> None:
        # search_runs pages with tokens: reaching the middle means walking the pages before it.
        token, seen = None, 0
        while seen < n // 2:
            page = client.search_runs([exp_id], max_results=min(1000, n // 2 - seen) or 50, page_token=token,
                                      order_by=["attributes.start_time DESC"])
            seen += len(page)
            token = page.token
            if not token:
                break
        client.search_runs([exp_id], max_results=50, page_token=token, order_by=["attributes.start_time DESC"])

    one = client.search_runs([exp_id], max_results=1)[0].info.run_id
    return {
        "create": n / create,
        "newest 50": timed(newest),
        "page at N/2": timed(middle, repeat=3),
        "one history": timed(lambda: client.get_metric_history(one, "m0")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--pg-uri", default=os.environ.get("RUNYARD_TEST_DB_URI"))
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"creating {args.runs:,} runs in each store ...", file=sys.stderr)
        results["runyard, SQLite"] = runyard_rows(args.runs, None, f"{tmp}/ry")
        if args.pg_uri:
            import sqlalchemy as sa

            engine = sa.create_engine(args.pg_uri)
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS bench_listing CASCADE; CREATE SCHEMA bench_listing"))
            sep = "&" if "?" in args.pg_uri else "?"
            results["runyard, PostgreSQL"] = runyard_rows(
                args.runs, f"{args.pg_uri}{sep}options=-csearch_path%3Dbench_listing", f"{tmp}/ry-pg")
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA IF EXISTS bench_listing CASCADE"))
        try:
            results["mlflow, sqlite:///"] = mlflow_rows(args.runs, tmp)
        except ImportError:
            print("mlflow is not installed: pip install 'runyard[mlflow]' to compare", file=sys.stderr)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"run listing, {args.runs:,} runs (5 metrics x 10 values, 3 params, 2 tags each)")
    for col in ("store", "runs created/s", "newest 50", "page at N/2", "one history"):
        table.add_column(col, justify="left" if col == "store" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['create']:,.0f}", *(f"{r[k] * 1000:.1f} ms" for k in ("newest 50", "page at N/2", "one history")))
    console = Console(width=140)
    console.print(table)
    base = results.get("mlflow, sqlite:///")
    if base:
        for name, r in results.items():
            if name.startswith("runyard"):
                ratios = ", ".join(f"{k} {base[k] / r[k]:.1f}x" for k in ("newest 50", "page at N/2", "one history"))
                console.print(f"{name} vs MLflow: create {r['create'] / base['create']:.1f}x, {ratios} faster")


if __name__ == "__main__":
    main()
