"""Scripts that log with mlflow.* land in runyard runs (MLFLOW_TRACKING_URI=runyard://…)."""
import pytest

from conftest import run_python
from runyard import Experiment

pytest.importorskip("mlflow")
pytestmark = [pytest.mark.integration, pytest.mark.mlflow]


def test_mlflow_calls_land_in_the_runyard_run(workspace, tmp_path):
    run = Experiment(workspace, "bridge").start_logging(outputs=False)
    (tmp_path / "report.txt").write_text("hello")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"w")
    run_python(
        f"""
        import mlflow
        for i, v in enumerate([0.9, 0.5, 0.1]):
            mlflow.log_metric("loss", v, step=i)
        mlflow.log_metrics({{"acc": 0.97, "val loss": 0.2}})
        mlflow.log_param("lr", 0.01)
        mlflow.set_tag("framework", "sklearn")
        mlflow.log_artifact({str(tmp_path / "report.txt")!r})
        mlflow.log_artifacts({str(tmp_path / "model")!r}, artifact_path="model")
        import numpy as np
        mlflow.log_input(mlflow.data.from_numpy(np.arange(6.0).reshape(3, 2), name="train"), context="training")
        client = mlflow.MlflowClient()
        rid = mlflow.active_run().info.run_id
        assert [m.value for m in client.get_metric_history(rid, "loss")] == [0.9, 0.5, 0.1]
        assert sorted(f.path for f in client.list_artifacts(rid)) == ["model", "report.txt"]
        assert [f.path for f in client.list_artifacts(rid, "model")] == ["model/w.bin"]
        assert client.list_artifacts(rid, "report.txt") == []
        """,
        env={**workspace.environment_variables(), "MLFLOW_TRACKING_URI": "runyard://", "MLFLOW_RUN_ID": run.id},
    )
    m = run.get_metrics()
    assert m == {"loss": [0.9, 0.5, 0.1], "acc": 0.97, "val loss": 0.2}
    assert run.get_tags()["framework"] == "sklearn"
    import json

    dataset = json.loads(run.get_tags()["mlflow.dataset.train"])
    assert dataset["context"] == "training" and dataset["digest"]
    assert workspace.metadata.get_run(run.id).params == {"lr": "0.01"}
    assert run.get_file_names() == ["model/w.bin", "report.txt"]
    assert run.get_status() == "Running"  # mlflow's end_run does not finish a run runyard owns


def test_runs_mlflow_creates_are_runyard_runs(workspace):
    run_python(
        """
        import mlflow
        mlflow.set_experiment("made-by-mlflow")
        mlflow.set_experiment_tag("purpose", "bridge test")
        with mlflow.start_run(run_name="outer"):
            mlflow.log_metric("m", 1.0)
            with mlflow.start_run(run_name="inner", nested=True):
                mlflow.log_metric("c", 2.0)
        with mlflow.start_run(run_name="broken"):
            mlflow.end_run(status="FAILED")
        found = mlflow.search_runs(experiment_names=["made-by-mlflow"], filter_string="metrics.m > 0.5")
        assert list(found["tags.mlflow.runName"]) == ["outer"], found
        """,
        env={"MLFLOW_TRACKING_URI": f"runyard://{workspace.path}", **workspace.environment_variables()},
    )
    exp = Experiment(workspace, "made-by-mlflow")
    assert exp.tags == {"purpose": "bridge test"}
    runs = {r.display_name: r for r in exp.get_runs(include_children=True)}
    assert set(runs) == {"outer", "inner", "broken"}
    assert runs["inner"].parent == runs["outer"]
    assert runs["outer"].get_status() == "Completed" and runs["broken"].get_status() == "Failed"
    assert runs["outer"].get_metrics(recursive=True)[runs["inner"].id] == {"c": 2.0}


def test_bad_experiment_names_are_mlflow_errors(workspace):
    proc = run_python(
        """
        import mlflow
        try:
            mlflow.create_experiment("/Users/me/exp")
        except mlflow.exceptions.MlflowException as e:
            print("REFUSED", e.message)
        exp_id = mlflow.create_experiment("fine-name")
        try:
            mlflow.MlflowClient().rename_experiment(exp_id, "other")
        except mlflow.exceptions.MlflowException as e:
            print("RENAME", e.message)
        """,
        env={"MLFLOW_TRACKING_URI": f"runyard://{workspace.path}", **workspace.environment_variables()},
    )
    assert "REFUSED invalid experiment name" in proc.stdout
    assert "RENAME runyard experiment names are permanent" in proc.stdout


def test_log_model_says_what_to_do_instead(workspace):
    proc = run_python(
        """
        import mlflow, mlflow.pyfunc

        class Echo(mlflow.pyfunc.PythonModel):
            def predict(self, context, model_input):
                return model_input

        with mlflow.start_run():
            try:
                mlflow.pyfunc.log_model(name="model", python_model=Echo())
            except mlflow.exceptions.MlflowException as e:
                print("REFUSED", e.message)
            import tempfile, os
            path = os.path.join(tempfile.mkdtemp(), "model")
            mlflow.pyfunc.save_model(path, python_model=Echo())
            mlflow.log_artifacts(path, "model")
            print("RUN", mlflow.active_run().info.run_id)
        """,
        env={"MLFLOW_TRACKING_URI": f"runyard://{workspace.path}", **workspace.environment_variables()},
    )
    assert "REFUSED MLflow logged models" in proc.stdout and "save_model" in proc.stdout
    run_id = proc.stdout.split("RUN ")[1].split()[0]
    assert "model/MLmodel" in workspace.get_run(run_id).get_file_names()


def test_inside_a_runyard_run_mlflow_attaches_to_it(workspace):
    run = Experiment(workspace, "attached").start_logging(outputs=False)
    run_python(
        """
        import mlflow
        mlflow.log_metric("loss", 0.5)                      # implies start_run(): the runyard run, not a new one
        with mlflow.start_run(run_name="tuning", nested=True):
            mlflow.log_metric("trial_loss", 0.1)
        print(mlflow.active_run().info.run_id)
        """,
        env={**workspace.environment_variables(), "MLFLOW_TRACKING_URI": "runyard://", "RUNYARD_RUN_ID": run.id},
    )
    assert run.get_metrics() == {"loss": 0.5}
    (child,) = run.get_children()
    assert child.display_name == "tuning" and child.get_metrics() == {"trial_loss": 0.1}
    assert [r.id for r in Experiment(workspace, "attached").get_runs()] == [run.id]  # no stray top-level run
    assert run.get_status() == "Running"
