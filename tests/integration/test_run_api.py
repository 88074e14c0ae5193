"""The user-facing run history API, end to end, on each metadata store backend."""
import math
import os

import numpy as np
import pytest

from runyard import Experiment, Run, RunStatus
from runyard.errors import InvalidStatusTransition, NotFound, ValidationError


def test_issue_example_end_to_end(workspace, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exp = Experiment(workspace, "digits")
    run = exp.start_logging()
    run.log("lr", 0.01)
    losses = [1.0, 0.5, 0.25]
    for v in losses:
        run.log("loss", v)
    run.log_list("acc", [0.1, 0.2, 0.3])
    run.log_row("t", epoch=1, acc=0.9)
    run.log_row("t", epoch=2, acc=0.95)
    run.log_table("cm", {"col": [1, 2]})
    plt.plot([0, 1], [0, 1])
    run.log_image("roc", plot=plt)
    (tmp_path / "roc.png").write_bytes(b"\x89PNG fake")
    run.log_image("roc file", path=tmp_path / "roc.png")
    (tmp_path / "m.pkl").write_bytes(b"model-bytes")
    run.upload_file("outputs/m.pkl", str(tmp_path / "m.pkl"))
    run.tag("team", "vision")
    run.add_properties({"git": "abc"})
    child = run.child_run("fold-1")
    child.log("fold_acc", 0.8)
    child.complete()
    run.complete()

    metrics = run.get_metrics()
    assert metrics["lr"] == 0.01 and metrics["loss"] == losses and metrics["acc"] == [0.1, 0.2, 0.3]
    assert metrics["t"] == {"epoch": [1, 2], "acc": [0.9, 0.95]} and metrics["cm"] == {"col": [1, 2]}
    assert metrics["roc"].startswith("images/roc_") and metrics["roc"] in run.get_file_names()
    assert metrics["roc file"] in run.get_file_names()
    assert run.get_metrics(name="lr") == {"lr": 0.01}
    assert run.get_metrics(recursive=True)[child.id] == {"fold_acc": 0.8}
    assert "outputs/m.pkl" in run.get_file_names()
    assert run.get_status() == "Completed" and child.get_status() == "Completed"
    assert run.get_tags() == {"team": "vision"} and run.get_properties() == {"git": "abc"}

    assert open(run.download_file("outputs/m.pkl", "here.pkl"), "rb").read() == b"model-bytes"
    assert run.download_files(prefix="outputs", output_directory="d") == [os.path.join("d", "outputs", "m.pkl")]
    assert run.download_files(prefix="outputs", output_directory="flat", append_prefix=False) == [os.path.join("flat", "m.pkl")]

    again = Run(exp, run.id)
    assert again == run and again.get_metrics() == {k: v for k, v in metrics.items()}
    assert [r.id for r in exp.get_runs()] == [run.id]
    assert [r.id for r in exp.get_runs(include_children=True)] == [child.id, run.id]
    assert list(workspace.experiments) == ["digits"]
    assert [c.id for c in run.get_children()] == [child.id] and child.parent == run
    details = run.get_details()
    assert details["status"] == "Completed" and details["startTimeUtc"].endswith("Z") and details["durationSeconds"] >= 0


def test_numpy_nan_and_inf_are_stored_and_shown(workspace):
    run = Experiment(workspace, "e").start_logging(outputs=False)
    run.log("np", np.float32(0.5))
    run.log("nan", float("nan"))
    run.log("inf", np.inf)
    run.log("text", "hello world")
    run.complete()
    m = run.get_metrics()
    assert m["np"] == 0.5 and math.isnan(m["nan"]) and m["inf"] == math.inf and m["text"] == "hello world"


def test_bad_input_is_refused_before_anything_is_written(workspace):
    exp = Experiment(workspace, "e")
    run = exp.start_logging(outputs=False)
    with pytest.raises(ValidationError, match="not a number or a string"):
        run.log("m", [1, 2])
    with pytest.raises(ValidationError, match="limit is 8192"):
        run.log("m", "x" * 10_000)
    with pytest.raises(ValidationError, match="'..'"):
        run.upload_file("../escape.txt", __file__)
    with pytest.raises(ValidationError, match="absolute"):
        run.upload_file("/etc/passwd", __file__)
    with pytest.raises(NotFound, match="no such file"):
        run.upload_file("outputs/x", "does-not-exist.txt")
    with pytest.raises(ValidationError, match="no '/'"):
        Experiment(workspace, "a/b")
    with pytest.raises(ValidationError, match="non-empty"):
        Experiment(workspace, "")
    run.complete()
    assert run.get_metrics() == {} and run.get_file_names() == []


def test_unknown_run_ids(workspace):
    exp = Experiment(workspace, "e")
    with pytest.raises(NotFound, match="'no_such_run' does not exist"):
        Run(exp, "no_such_run")
    with pytest.raises(ValidationError, match="invalid run id"):
        Run(exp, "../etc")
    other = Experiment(workspace, "other").start_logging(outputs=False)
    with pytest.raises(NotFound, match="belongs to experiment 'other'"):
        Run(exp, other.id)
    assert workspace.get_run(other.id) == other


def test_terminal_status_never_changes(workspace, tmp_path):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "m.txt").write_text("m")
    run = Experiment(workspace, "e").start_logging()
    run.fail(error_details=ValueError("bad data"))
    assert run.get_status() == "Failed" and "ValueError: bad data" in run.get_details()["error"]["message"]
    assert run.get_file_names() == ["outputs/m.txt"]  # a failed run still keeps its outputs
    (tmp_path / "outputs" / "late.txt").write_text("late")
    with pytest.raises(InvalidStatusTransition, match="already Failed"):
        run.complete()
    run.fail()  # failing twice is harmless
    assert run.get_status() == "Failed" and run.get_file_names() == ["outputs/m.txt"]  # nothing re-uploaded


def test_a_failed_upload_keeps_what_was_stored_and_fails_the_run(workspace, tmp_path):
    (tmp_path / "outputs").mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / "outputs" / name).write_text(name)
    run = Experiment(workspace, "e").start_logging()
    real_put = workspace.artifacts.put_file

    def flaky(run_id, name, path):
        if name.endswith("c.txt"):
            from runyard.errors import StoreError

            raise StoreError("disk full (injected)")
        return real_put(run_id, name, path)

    workspace.artifacts.put_file = flaky
    run.complete()
    assert run.get_status() == "Failed" and "disk full" in run.get_details()["error"]["message"]
    assert run.get_file_names() == ["outputs/a.txt", "outputs/b.txt"]


def test_context_manager_fails_the_run_on_exception(workspace):
    exp = Experiment(workspace, "e")
    with pytest.raises(RuntimeError):
        with exp.start_logging(outputs=False) as run:
            run.log("x", 1)
            raise RuntimeError("diverged")
    assert run.get_status() == "Failed" and run.get_metrics() == {"x": 1}
    assert "diverged" in run.get_details()["error"]["message"]


def test_outputs_folder_is_uploaded_at_complete(workspace, tmp_path):
    (tmp_path / "outputs" / "sub").mkdir(parents=True)
    (tmp_path / "outputs" / "model.txt").write_text("m")
    (tmp_path / "outputs" / "sub" / "w.bin").write_bytes(b"w")
    run = Experiment(workspace, "e").start_logging()  # tracks ./outputs by default, as Azure ML does
    run.complete()
    assert run.get_file_names() == ["outputs/model.txt", "outputs/sub/w.bin"]


def test_get_runs_filters_by_tags_properties_status(workspace):
    exp = Experiment(workspace, "e")
    a = exp.start_logging(outputs=False)
    a.tag("kind", "baseline")
    a.add_properties({"algo": "svm"})
    a.complete()
    b = exp.start_logging(outputs=False)
    b.tag("kind", "big")
    assert [r.id for r in exp.get_runs(tags={"kind": "baseline"})] == [a.id]
    assert [r.id for r in exp.get_runs(tags={"kind": None})] == [b.id, a.id]
    assert [r.id for r in exp.get_runs(properties={"algo": "svm"})] == [a.id]
    assert [r.id for r in exp.get_runs(status="Running")] == [b.id]
    b.cancel()
    assert b.get_status() == RunStatus.CANCELED.value


def test_create_children_and_recursive_metrics(workspace):
    parent = Experiment(workspace, "sweep").start_logging(outputs=False)
    kids = parent.create_children(tag_key="fold", tag_values=["1", "2"])
    for i, kid in enumerate(kids):
        kid.log("acc", i / 10)
        grandchild = kid.child_run()
        grandchild.log("g", i)
        grandchild.complete()
        kid.complete()
    parent.complete()
    tree = parent.get_metrics(recursive=True)
    assert len(tree) == 5 and tree[parent.id] == {}
    assert sorted(v for m in tree.values() for k, v in m.items() if k == "acc") == [0.0, 0.1]
    assert [k.get_tags()["fold"] for k in parent.get_children(tags={"fold": "2"})] == ["2"]


def test_display_name_and_description(workspace):
    run = Experiment(workspace, "e").start_logging(display_name="first try", outputs=False)
    assert run.display_name == "first try"
    run.display_name = "renamed"
    run.description = "lr sweep"
    again = workspace.get_run(run.id)
    assert again.display_name == "renamed" and again.description == "lr sweep"


def test_experiment_tags(workspace):
    exp = Experiment(workspace, "tagged")
    exp.tag("owner", "vision-team")
    exp.tag("flag")
    assert exp.tags == {"owner": "vision-team", "flag": ""}
    exp.remove_tags(["flag"])
    assert workspace.experiments["tagged"].tags == {"owner": "vision-team"}


def test_a_big_tree_is_read_level_by_level(workspace):
    exp = Experiment(workspace, "sweep")
    root = exp.start_logging(outputs=False)
    store = workspace.metadata
    trials = [store.create_run(exp.id, parent_run_id=root.id, status="Completed").run_id for _ in range(300)]
    for trial in trials[:3]:
        store.create_run(exp.id, parent_run_id=trial, status="Completed")
    calls = []
    real = store.list_runs
    store.list_runs = lambda **kw: calls.append(kw) or real(**kw)
    try:
        found = [r.id for r in root.get_children(recursive=True)]
    finally:
        del store.list_runs
    assert len(found) == 303 and set(trials) <= set(found)
    assert len(calls) <= 6  # two pages of trials, one page of grandchildren, one empty level — not 300 queries
