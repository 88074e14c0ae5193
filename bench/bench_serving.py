"""Serving: the same scikit-learn model behind runyard's service, `mlflow models serve` and a bare FastAPI app.

    .venv/bin/python bench/bench_serving.py [--seconds 10] [--connections 4]

One machine, one client (wrk, keep-alive; `apt-get install wrk`), servers on 127.0.0.1, run one after the other:

- runyard, no code (`Model.deploy(ws, name, [model])`) and with a scoring script (init/run, Azure's contract);
- runyard, no code, the same model converted to ONNX (onnxruntime);
- runyard, no code, with ``--workers`` server processes (``deploy_configuration(workers=N)``);
- `mlflow models serve --env-manager local` of the same model saved with `mlflow.sklearn.save_model`;
- a bare FastAPI + uvicorn app: an `async def` endpoint that parses the JSON and calls the same `predict`.

Requests: one row of the digits data set (64 features) and a batch of 100 rows. Figures: requests/s, p50 and p99
latency (wrk's), and each server's throughput relative to MLflow's.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

BARE = """
import json, pickle
import numpy as np
from fastapi import FastAPI, Request
model = pickle.load(open({path!r}, "rb"))
app = FastAPI()
@app.post("/score")
async def score(request: Request):
    data = json.loads(await request.body())["data"]
    return model.predict(np.asarray(data)).tolist()
"""

SCORE = """
import json, pickle
import numpy as np
from runyard import Model
def init():
    global model
    model = pickle.load(open(Model.get_model_path("digits"), "rb"))
def run(raw_data):
    return model.predict(np.asarray(json.loads(raw_data)["data"])).tolist()
"""

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""


def free_port() -> int:
    from runyard.runtime.resources import free_ports

    return free_ports(1)[0]


def wait_up(url: str, body: bytes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def wrk(url: str, body: str, seconds: int, connections: int, folder: Path) -> tuple[float, float, float]:
    script = folder / "post.lua"
    script.write_text(LUA.format(body=body))
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s",
                          str(script), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(pct: str) -> float:
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")
    return rps, latency("50"), latency("99")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="server processes of the multi-worker row")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("this benchmark needs wrk: apt-get install wrk")
    import mlflow
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from runyard import InferenceConfig, LocalWebservice, Model, Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    X, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(X, y)
    pickle.dump(clf, open(tmp / "model.pkl", "wb"))
    onx = skl2onnx.convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, 64]))],
                                   options={id(clf): {"zipmap": False}})
    (tmp / "digits.onnx").write_bytes(onx.SerializeToString())
    (tmp / "serve").mkdir()
    (tmp / "serve" / "score.py").write_text(textwrap.dedent(SCORE))
    (tmp / "bare.py").write_text(textwrap.dedent(BARE.format(path=str(tmp / "model.pkl"))))
    bodies = {"1 row": json.dumps({"data": X[:1].tolist()}), "100 rows": json.dumps({"data": X[:100].tolist()})}

    ws = Workspace(tmp / "ws")
    model = Model.register(ws, tmp / "model.pkl", "digits", model_framework="ScikitLearn")
    onnx_model = Model.register(ws, tmp / "digits.onnx", "digits-onnx", model_framework="Onnx")
    model_uri = str(tmp / "mlflow-model")
    mlflow.sklearn.save_model(clf, model_uri)  # the MLflow model format, no tracking store needed

    servers = {}

    def start_runyard(name, models, inference=None, workers=1):
        def start():
            config = LocalWebservice.deploy_configuration(workers=workers)
            service = Model.deploy(ws, name, models, inference, config, overwrite=True)
            service.wait_for_deployment()
            return service.scoring_uri, service.delete
        return start

    def start_process(argv, port, env=None):
        def start():
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow execs uvicorn
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "PATH": path, **(env or {})}, cwd=tmp)
            url = f"http://127.0.0.1:{port}/" + ("invocations" if "mlflow" in argv[0] or "mlflow" in argv else "score")

            def stop():
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            return url, stop
        return start

    port_m, port_b = free_port(), free_port()
    servers["runyard, no code"] = start_runyard("nocode", [model])
    servers["runyard, score.py"] = start_runyard("script", [model], InferenceConfig("score.py", str(tmp / "serve")))
    servers["runyard, no code, ONNX"] = start_runyard("onnx", [onnx_model])
    servers[f"runyard, no code, {args.workers} workers"] = start_runyard("nocode-n", [model], workers=args.workers)
    servers["mlflow models serve"] = start_process(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-h",
         "127.0.0.1", "-p", str(port_m)], port_m)
    servers["bare FastAPI + uvicorn"] = start_process(
        [sys.executable, "-m", "uvicorn", "bare:app", "--host", "127.0.0.1", "--port", str(port_b), "--log-level",
         "warning", "--no-access-log"], port_b)

    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    for name, start in servers.items():
        url, stop = start()
        try:
            for label, body in bodies.items():
                payload = body if "mlflow" not in name else json.dumps({"inputs": json.loads(body)["data"]})
                wait_up(url, payload.encode())
                wrk(url, payload, 2, args.connections, tmp)  # warm-up
                results.setdefault(name, {})[label] = wrk(url, payload, args.seconds, args.connections, tmp)
                print(f"{name:30} {label:9} {results[name][label][0]:8.0f} req/s", flush=True)
        finally:
            stop()
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nwrk, {args.connections} connections, keep-alive, {args.seconds} s each; digits LogisticRegression\n")
    print(f"{'':30} {'':9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs MLflow':>10}")
    for name, by_label in results.items():
        for label, (rps, p50, p99) in by_label.items():
            base = results["mlflow models serve"][label][0]
            print(f"{name:30} {label:9} {rps:8.0f} {p50:8.2f} {p99:8.2f} {rps / base:9.2f}x")


if __name__ == "__main__":
    main()
