"""The model registry for real: a submitted run trains and saves a scikit-learn model, which is registered from the
run's outputs and from a local file; versions, aliases, tags, lineage, downloads, the CLI."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from runyard import Experiment, Model, NotFound, ResourceConfiguration, ScriptRunConfig, ValidationError, Workspace

pytestmark = [pytest.mark.integration]

TRAIN = """
    import os, pickle
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from runyard import Run
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=200).fit(X[:1200], y[:1200])
    Run.get_context().log("accuracy", model.score(X[1200:], y[1200:]))
    os.makedirs("outputs/model", exist_ok=True)
    pickle.dump(model, open("outputs/model/model.pkl", "wb"))
    open("outputs/model/labels.txt", "w").write("0123456789")
"""


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def trained(ws, tmp_path):
    pytest.importorskip("sklearn")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text(textwrap.dedent(TRAIN))
    run = Experiment(ws, "digits").submit(ScriptRunConfig(str(proj), "train.py"))
    run.wait_for_completion()
    return run


def test_register_from_a_runs_outputs_versions_aliases_and_lineage(ws, trained, tmp_path):
    run = trained
    model = run.register_model("digits", "outputs/model", model_framework=Model.Framework.SCIKITLEARN,
                               model_framework_version="1.5", tags={"area": "vision"}, properties={"acc": 0.95},
                               resource_configuration=ResourceConfiguration(cpu=1, memory_in_gb=0.5),
                               datasets=[("training", "digits-ds")], description="logistic regression")
    assert (model.id, model.version, model.run_id, model.model_framework) == ("digits:1", 1, run.id, "ScikitLearn")
    assert {f["path"] for f in model.files} == {"model.pkl", "labels.txt"}
    assert model.resource_configuration == ResourceConfiguration(cpu=1, memory_in_gb=0.5)
    assert model.datasets == {"training": ["digits-ds"]} and model.properties == {"acc": "0.95"}

    folder = model.download(tmp_path / "dl")
    assert sorted(os.listdir(folder)) == ["labels.txt", "model.pkl"]
    clf = pickle.load(open(os.path.join(folder, "model.pkl"), "rb"))
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    assert clf.score(X[1200:], y[1200:]) == run.get_metrics()["accuracy"]
    with pytest.raises(ValidationError, match="exists already"):
        model.download(tmp_path / "dl")
    assert model.download(tmp_path / "dl", exist_ok=True) == folder

    # A single local file is the next version; its content is stored once whatever registers it.
    second = Model.register(ws, os.path.join(folder, "model.pkl"), "digits", tags={"area": "vision", "stage": "b"})
    assert second.version == 2 and second.run_id is None and [f["path"] for f in second.files] == ["model.pkl"]
    assert second.files[0]["sha256"] == next(f["sha256"] for f in model.files if f["path"] == "model.pkl")
    single = second.download(tmp_path / "one")
    assert single.endswith("model.pkl") and os.path.isfile(single)

    assert Model(ws, "digits").version == 2 and Model(ws, "digits", version=1).run_id == run.id
    assert Model(ws, id="digits:1") == model
    model.set_alias("prod")
    assert Model(ws, "digits", alias="prod").version == 1
    second.set_alias("prod")  # an alias moves
    assert Model(ws, "digits", alias="prod").version == 2 and Model(ws, "digits", version=1).aliases == []
    second.add_tags({"stage": "c"})
    assert Model(ws, "digits").tags == {"area": "vision", "stage": "c"}
    with pytest.raises(ValidationError, match="properties are immutable"):
        model.add_properties({"acc": "0.5"})

    assert [m.id for m in Model.list(ws, name="digits")] == ["digits:2", "digits:1"]
    assert [m.id for m in Model.list(ws, tags={"stage": "c"})] == ["digits:2"]
    assert [m.id for m in Model.list(ws, run_id=run.id)] == ["digits:1"]
    assert [m.id for m in Model.list(ws, name="digits", limit=1, offset=1)] == ["digits:1"]
    assert [m.id for m in Model.list(ws, latest=True)] == ["digits:2"]

    with pytest.raises(NotFound, match=r"has no version 7; versions: 1, 2"):
        Model(ws, "digits", version=7)
    with pytest.raises(NotFound, match="did you mean digits"):
        Model(ws, "digitz")
    with pytest.raises(NotFound, match="has no alias 'staging'; aliases: prod"):
        Model(ws, "digits", alias="staging")
    with pytest.raises(NotFound, match="has no file or folder 'outputs/nope'"):
        run.register_model("x", "outputs/nope")
    with pytest.raises(ValidationError, match="model_framework 'Caffe' is not one of"):
        Model.register(ws, folder, "x", model_framework="Caffe")


def test_get_model_path_inside_a_service_and_outside(ws, tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(b"\0" * 10)
    Model.register(ws, tmp_path / "m" / "weights.bin", "w")
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.delenv("RUNYARD_MODEL_DIR", raising=False)
    with pytest.raises(NotFound, match="pass _workspace="):
        Model.get_model_path("w")
    local = Model.get_model_path("w", _workspace=ws)
    assert local.endswith("weights.bin") and os.path.getsize(local) == 10
    service_dir = tmp_path / "service"
    Model(ws, "w").download(service_dir)  # what a service's model folder holds
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(service_dir))
    assert Model.get_model_path("w") == str(service_dir / "weights.bin")


def test_models_cli(ws, trained, tmp_path):
    cli = [os.path.join(os.path.dirname(sys.executable), "runyard"), "-w", str(ws.path)]

    def runyard(*args: str) -> str:
        out = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    assert "registered digits:1 (2 file(s))" in runyard("models", "register", "digits", "--run", trained.id,
                                                       "--run-path", "outputs/model", "--framework", "ScikitLearn",
                                                       "--tag", "team=ml")
    (tmp_path / "m.pkl").write_bytes(b"weights")
    assert "registered digits:2 (1 file(s))" in runyard("models", "register", "digits", "--path", str(tmp_path / "m.pkl"))
    assert "digits@prod → version 1" in runyard("models", "alias", "digits:1", "prod")
    listing = runyard("models", "list")
    assert "digits" in listing and "ScikitLearn" in listing and "prod" in listing and "team=ml" in listing
    shown = runyard("models", "show", "digits@prod")
    assert '"runId": "' + trained.id + '"' in shown and '"version": 1' in shown
    path = runyard("models", "download", "digits:2", "-o", str(tmp_path / "out")).strip()
    assert open(path, "rb").read() == b"weights"
    bad = subprocess.run([*cli, "models", "show", "digits:x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "write NAME, NAME:VERSION (a number) or NAME@ALIAS" in bad.stderr
