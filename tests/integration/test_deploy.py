"""Deployed services for real: uvicorn processes on 127.0.0.1 serving registered scikit-learn and ONNX models."""
from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from runyard import InferenceConfig, LocalWebservice, Model, Workspace
from runyard.deploy import DeploymentError

pytestmark = [pytest.mark.integration]
sklearn = pytest.importorskip("sklearn")
pytest.importorskip("fastapi")

SCORE = """
    import json, os, pickle, time
    import numpy as np
    from runyard import Model
    def init():
        global model
        model = pickle.load(open(Model.get_model_path("digits"), "rb"))
    def run(raw_data):
        request = json.loads(raw_data)
        if request.get("explode"):
            raise RuntimeError("the model exploded")
        if request.get("sleep"):
            time.sleep(request["sleep"])
        data = np.array(request["data"])
        if data.ndim != 2:
            raise ValueError("data must be a list of rows")
        return {"predictions": model.predict(data).tolist(), "model_dir": os.environ["RUNYARD_MODEL_DIR"]}
"""


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


@pytest.fixture
def model(ws, tmp_path, digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    path = tmp_path / "model.pkl"
    pickle.dump(LogisticRegression(max_iter=300).fit(X, y), open(path, "wb"))
    return Model.register(ws, path, "digits", model_framework=Model.Framework.SCIKITLEARN)


@pytest.fixture
def serve(tmp_path):
    folder = tmp_path / "serve"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent(SCORE))
    return folder


def post(url: str, body: bytes, key: str | None = None, **more: str) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {}),
               **{k.replace("_", "-"): v for k, v in more.items()}}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str, key: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def port_is_free(port: int) -> bool:
    """A server could listen there now (SO_REUSEADDR, as servers bind: closed connections in TIME_WAIT don't count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_a_scoring_script_with_keys_errors_update_and_delete(ws, model, serve, digits, tmp_path):
    X, y = digits
    inference = InferenceConfig(entry_script="score.py", source_directory=str(serve))
    service = Model.deploy(ws, "digits-svc", [model], inference,
                           LocalWebservice.deploy_configuration(auth_enabled=True, max_request_size_mb=0.5,
                                                                timeout_seconds=2))
    service.wait_for_deployment(show_output=True)
    assert service.state == "Healthy" and service.models == ["digits:1"]
    out = service.run(json.dumps({"data": X[:4].tolist()}))
    assert out["predictions"] == y[:4].tolist() and out["model_dir"].endswith("digits/1")

    body = json.dumps({"data": X[:2].tolist()}).encode()
    primary, secondary = service.get_keys()
    assert post(service.scoring_uri, body)[0] == 401  # no key
    assert post(service.scoring_uri, body, "wrong")[0] == 401
    assert post(service.scoring_uri, body, secondary)[0] == 200
    assert get(service.scoring_uri.replace("/score", "/health"))[0] == 200  # health needs no key
    status, swagger = get(service.swagger_uri, primary)
    assert status == 200 and "401" in json.loads(swagger)["paths"]["/score"]["post"]["responses"]
    assert get(service.swagger_uri)[0] == 401 and get(service.scoring_uri, primary)[0] == 405
    service.regen_key("Primary")
    assert post(service.scoring_uri, body, primary)[0] == 401 and post(service.scoring_uri, body, service.get_keys()[0])[0] == 200

    key = service.get_keys()[0]
    status, text = post(service.scoring_uri, json.dumps({"data": [1, 2, 3]}).encode(), key)
    assert status == 400 and "data must be a list of rows" in text
    status, text = post(service.scoring_uri, json.dumps({"explode": True}).encode(), key)
    assert status == 500 and "RuntimeError: the model exploded" in text and "Traceback" not in text
    assert "Traceback" in service.get_logs() and "the model exploded" in service.get_logs()
    assert post(service.scoring_uri, json.dumps({"sleep": 4}).encode(), key)[0] == 504
    assert post(service.scoring_uri, b'{"data": "' + b"x" * (1 << 20) + b'"}', key)[0] == 413

    # Update to a model that always says 7: same port, same keys, new answers.
    from sklearn.dummy import DummyClassifier

    pickle.dump(DummyClassifier(strategy="constant", constant=7).fit(X[:10], [7] * 10), open(tmp_path / "m7.pkl", "wb"))
    seven = Model.register(ws, tmp_path / "m7.pkl", "digits")
    port = service.port
    service.update(models=[seven])
    assert service.port == port and service.models == ["digits:2"]
    assert service.run({"data": X[:3].tolist()})["predictions"] == [7, 7, 7]

    service.delete()
    assert port_is_free(port)
    assert LocalWebservice.list(ws) == []


def test_no_code_serves_a_joblib_dump_named_pkl(ws, digits, tmp_path):
    """What Azure's scikit-learn samples write: ``joblib.dump(clf, "outputs/model.pkl")`` (plain and compressed);
    ``pickle.load`` cannot read either (``invalid load key``), joblib reads them and plain pickles."""
    import joblib
    from sklearn.tree import DecisionTreeClassifier

    X, y = digits
    clf = DecisionTreeClassifier(random_state=0).fit(X, y)
    for name, compress in (("plain", 0), ("zipped", 3)):
        folder = tmp_path / name
        folder.mkdir()
        joblib.dump(clf, folder / "model.pkl", compress=compress)
        if compress:
            with pytest.raises(pickle.UnpicklingError, match="invalid load key"):
                pickle.load(open(folder / "model.pkl", "rb"))
        registered = Model.register(ws, folder / "model.pkl", f"jl-{name}", model_framework="ScikitLearn")
        service = Model.deploy(ws, f"jl-{name}", [registered])
        service.wait_for_deployment()
        assert service.run({"data": X[:8].tolist()}) == y[:8].tolist()
        service.delete()


def test_no_code_sklearn_and_onnx_and_bad_requests(ws, model, digits, tmp_path):
    X, y = digits
    plain = Model.deploy(ws, "plain", [model])
    plain.wait_for_deployment()
    assert plain.run({"data": X[:5].tolist()}) == y[:5].tolist()
    assert post(plain.scoring_uri, b"{not json")[0] == 400
    status, text = post(plain.scoring_uri, json.dumps({"rows": []}).encode())
    assert status == 400 and 'no "data" key' in json.loads(text)["error"]
    status, text = post(plain.scoring_uri, json.dumps({"data": [["a", "b"]]}).encode())
    assert status == 400 and "the rows are not numbers of one shape" in json.loads(text)["error"]
    status, text = post(plain.scoring_uri, b"[" * 50_000 + b"]" * 50_000)  # deeper than json can parse
    assert status == 400 and "nested too deeply" in json.loads(text)["error"]
    # Keyless on loopback: a page of another site cannot post (DNS rebinding: a foreign Host; or its Origin).
    good = json.dumps({"data": X[:1].tolist()}).encode()
    assert post(plain.scoring_uri, good, Origin="http://evil.example")[0] == 403
    status, text = post(plain.scoring_uri, good, Host="evil.example")
    assert status == 400 and "rebinding" in text
    assert post(plain.scoring_uri, good, Origin=plain.scoring_uri.rsplit("/", 1)[0])[0] == 200  # its own origin

    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    from runyard import ConfigError
    from runyard.onnx import export

    clf = pickle.load(open(Model(ws, "digits").download(tmp_path / "dl"), "rb"))
    path = export(clf, X[:2], tmp_path / "digits.onnx")
    onnx_model = Model.register(ws, path, "digits-onnx", model_framework=Model.Framework.ONNX)
    with pytest.raises(ConfigError, match="knows scikit-learn, PyTorch and Keras/TensorFlow models"):
        export(object(), X[:2], tmp_path / "x.onnx")
    served = Model.deploy(ws, "onnx", [onnx_model])
    served.wait_for_deployment()
    assert served.run({"data": X[:20].tolist()}) == clf.predict(X[:20]).tolist()
    assert {s.name for s in LocalWebservice.list(ws)} == {"plain", "onnx"}
    for service in (plain, served):
        service.delete()


def test_bad_deployments_fail_clearly_and_a_service_outlives_its_deployer(ws, model, serve, tmp_path):
    (serve / "broken.py").write_text("def init():\n    raise RuntimeError('no weights here')\ndef run(raw):\n    return 1\n")
    broken = Model.deploy(ws, "broken", [model], InferenceConfig(entry_script="broken.py", source_directory=str(serve)))
    with pytest.raises(DeploymentError, match="no weights here"):
        broken.wait_for_deployment()
    assert broken.state == "Failed"
    broken.delete()
    from runyard import ConfigError

    with pytest.raises(ConfigError, match="is not a file"):
        InferenceConfig(entry_script="nope.py", source_directory=str(serve))
    (tmp_path / "blob.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match="deploy it with a scoring script"):
        Model.deploy(ws, "blob", [Model.register(ws, tmp_path / "blob.bin", "blob")])

    code = textwrap.dedent(f"""
        from runyard import Model, Workspace
        ws = Workspace({str(ws.path)!r})
        service = Model.deploy(ws, "lasting", [Model(ws, "digits")])
        service.wait_for_deployment()
        print(service.port)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lasting = LocalWebservice(ws, "lasting")  # its deployer has exited
    assert lasting.state == "Healthy" and lasting.port == int(out.stdout.split()[-1])
    cli = [os.path.join(os.path.dirname(sys.executable), "runyard"), "-w", str(ws.path)]
    listing = subprocess.run([*cli, "services", "list"], capture_output=True, text=True, timeout=60)
    assert "lasting" in listing.stdout and "Healthy" in listing.stdout, listing.stdout + listing.stderr
    assert subprocess.run([*cli, "services", "delete", "lasting"], capture_output=True, timeout=60).returncode == 0
    assert port_is_free(int(out.stdout.split()[-1]))


def test_no_code_with_a_framework_version_serves_from_a_built_environment(ws, tmp_path, digits, local_packages):
    import sklearn as sk
    from sklearn.tree import DecisionTreeClassifier

    X, y = digits
    pickle.dump(DecisionTreeClassifier(random_state=0).fit(X, y), open(tmp_path / "tree.pkl", "wb"))
    series = ".".join(sk.__version__.split(".")[:2])
    model = Model.register(ws, tmp_path / "tree.pkl", "tree", model_framework="ScikitLearn",
                           model_framework_version=series)
    service = Model.deploy(ws, "tree", [model])
    service.wait_for_deployment()
    assert service.spec["python"].startswith(str(ws.path / "envs"))  # its own environment, not this interpreter
    assert service.run({"data": X[:10].tolist()}) == y[:10].tolist()
    assert "installing" in service.get_logs() and f"scikit-learn=={series}" in service.get_logs()
    service.delete()


@pytest.mark.torch
def test_train_register_and_serve_a_torchscript_model_without_code(ws, tmp_path, local_packages):
    from runyard import Experiment
    from runyard.train.dnn import PyTorch

    proj = tmp_path / "torchproj"
    proj.mkdir()
    (proj / "train.py").write_text(textwrap.dedent("""
        import os, torch
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        os.makedirs("outputs", exist_ok=True)
        torch.jit.save(torch.jit.script(model), "outputs/model.pt")
        x = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]])
        print("expected", model(x).tolist())
    """))
    run = Experiment(ws, "torch").submit(PyTorch(str(proj), entry_script="train.py", framework_version="2.13"))
    run.wait_for_completion()
    expected = json.loads(next(line for line in "".join(run._target().log_iter(run.id)).splitlines()
                               if line.startswith("expected")).split(" ", 1)[1])
    model = run.register_model("tiny", "outputs/model.pt", model_framework=Model.Framework.PYTORCH,
                               model_framework_version="2.13")
    service = Model.deploy(ws, "tiny", [model])
    service.wait_for_deployment()
    got = service.run({"data": [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]})
    assert [v for row in got for v in row] == pytest.approx([v for row in expected for v in row], rel=1e-5)
    service.delete()


def test_deploy_cli(ws, model, tmp_path):
    cli = [os.path.join(os.path.dirname(sys.executable), "runyard"), "-w", str(ws.path)]
    out = subprocess.run([*cli, "deploy", "digits:1", "--name", "cli-svc", "--auth"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cli-svc: Healthy, serving digits:1 at http://127.0.0.1:" in out.stdout and "primary key: " in out.stdout
    key = out.stdout.split("primary key: ")[1].split()[0]
    uri = out.stdout.split(" at ")[1].split()[0]
    assert post(uri, json.dumps({"data": [[0.0] * 64]}).encode(), key)[0] == 200
    logs = subprocess.run([*cli, "services", "logs", "cli-svc"], capture_output=True, text=True, timeout=60)
    assert "revision 1: digits:1 on 127.0.0.1:" in logs.stdout
    again = subprocess.run([*cli, "deploy", "digits:1", "--name", "cli-svc"], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 1 and "exists; delete it, update it, or pass overwrite=True" in again.stderr
    assert subprocess.run([*cli, "services", "delete", "cli-svc"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.tf
def test_train_register_and_serve_keras_and_savedmodel_models_without_code(ws, tmp_path, local_packages):
    """A Keras model trained in a TensorFlow run, saved as ``model.keras`` and as a SavedModel, each served without a
    scoring script: the answers are the model's own predictions."""
    from runyard import Experiment
    from runyard.train.dnn import TensorFlow

    proj = tmp_path / "tfproj"
    proj.mkdir()
    (proj / "train.py").write_text(textwrap.dedent("""
        import json, os
        import numpy as np, tensorflow as tf
        tf.keras.utils.set_random_seed(0)
        x = np.random.default_rng(0).random((64, 3)).astype("float32")
        model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(8, activation="relu"),
                                     tf.keras.layers.Dense(2)])
        model.compile("adam", "mse")
        model.fit(x, x[:, :2], epochs=2, verbose=0)
        os.makedirs("outputs/keras", exist_ok=True)
        model.save("outputs/keras/model.keras")
        model.export("outputs/saved")
        rows = [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]
        print("expected", json.dumps(model.predict(np.array(rows, dtype="float32"), verbose=0).tolist()))
    """))
    run = Experiment(ws, "tf").submit(TensorFlow(str(proj), entry_script="train.py", framework_version="2.21",
                                                 environment_variables={"TF_CPP_MIN_LOG_LEVEL": "2"}))
    assert run.wait_for_completion()["status"] == "Completed", run.get_details()["error"]
    expected = json.loads(next(line for line in "".join(run._target().log_iter(run.id)).splitlines()
                               if line.startswith("expected")).split(" ", 1)[1])
    flat = [v for row in expected for v in row]
    for name, path in (("keras-file", "outputs/keras"), ("savedmodel", "outputs/saved")):
        model = run.register_model(name, path, model_framework=Model.Framework.TENSORFLOW,
                                   model_framework_version="2.21")
        service = Model.deploy(ws, name, [model])
        service.wait_for_deployment()
        got = service.run({"data": [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]})
        assert [v for row in got for v in row] == pytest.approx(flat, rel=1e-4, abs=1e-5), name
        service.delete()


def test_several_worker_processes_share_the_port_and_fail_together(ws, model, serve, digits):
    import psutil

    from runyard import ConfigError, Environment

    X, y = digits
    service = Model.deploy(ws, "workers", [model], deployment_config=LocalWebservice.deploy_configuration(workers=2))
    service.wait_for_deployment()
    assert service.spec["workers"] == 2
    parent = psutil.Process(int((service.dir / "pid").read_text().split()[0]))
    servers = [p for p in parent.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
    assert len(servers) == 2  # two workers under uvicorn's supervisor, each with the model loaded
    for i in range(20):  # every answer right, whichever worker takes it
        assert service.run({"data": X[i:i + 3].tolist()}) == y[i:i + 3].tolist()
    assert post(service.scoring_uri, b"{not json")[0] == 400
    port = service.port
    service.delete()
    assert port_is_free(port) and not any(p.is_running() and p.status() != "zombie" for p in servers)

    # Azure's inference server reads WORKER_COUNT from the environment: so does a local service.
    env = Environment.from_existing_interpreter("current")
    env.environment_variables = {"WORKER_COUNT": "3"}
    counted = Model.deploy(ws, "counted", [model], InferenceConfig(environment=env))
    assert counted.spec["workers"] == 3
    counted.delete()
    with pytest.raises(ConfigError, match="workers must be a whole number from 1 to 64"):
        LocalWebservice.deploy_configuration(workers=0)
    env.environment_variables = {"WORKER_COUNT": "many"}
    with pytest.raises(ConfigError, match="WORKER_COUNT must be a whole number"):
        Model.deploy(ws, "bad", [model], InferenceConfig(environment=env))
    # A worker that cannot start ends the service: the deployment fails with its log rather than restarting forever.
    (serve / "broken.py").write_text("def init():\n    raise RuntimeError('no weights here')\ndef run(raw):\n    return 1\n")
    broken = Model.deploy(ws, "broken", [model], InferenceConfig(entry_script="broken.py", source_directory=str(serve)),
                          LocalWebservice.deploy_configuration(workers=2))
    with pytest.raises(DeploymentError, match="no weights here"):
        broken.wait_for_deployment(timeout_sec=60)
    broken.delete()
