"""The contract every compute target keeps (STYLE.md): good script → Completed; failing → Failed with its exit
code; cancel twice is safe; unknown id → None; stdout reaches the logs. Runs on every target — ``local``, an
``amlcompute`` pool of this machine, and ``ray`` (the two-node cluster of the Ray suite, in its loopback-only
namespace: scripts/test_ray.sh) — and on SQLite and PostgreSQL."""
from __future__ import annotations

import textwrap
import time

import pytest

from runyard import Environment, Experiment, RunFailed, ScriptRunConfig
from runyard.compute import get_target

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "amlcompute", pytest.param("ray", marks=pytest.mark.ray)])
def target_name(request, workspace):
    """A target of each kind, registered in the test's workspace as a user would."""
    from runyard.compute import AmlCompute, ComputeTarget, RayCompute

    if request.param == "local":
        yield "local"
        return
    if request.param == "amlcompute":  # no RUNYARD_CLUSTER: a pool of this machine
        target = ComputeTarget.create(workspace, "aml-pool", AmlCompute.provisioning_configuration(max_nodes=2))
        assert target.type == "amlcompute"
        yield target.name
        return
    _, cluster = request.getfixturevalue("cluster")
    target = ComputeTarget.create(workspace, "ray-cluster", RayCompute.attach_configuration(
        cluster.dashboard, placement_strategy="SPREAD"))
    yield target.name
    target.delete()


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "helpers.py").write_text("def answer():\n    return 42\n")
    (root / "src" / "train.py").write_text(textwrap.dedent("""
        import os, sys, time
        from helpers import answer          # the snapshot's root is importable from a subfolder script
        from runyard import Run
        run = Run.get_context()
        print("args", sys.argv[1:], "answer", answer(), "cwd-has-helpers", os.path.exists("helpers.py"))
        mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
        run.log("mode", mode)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/result.txt", "w").write(mode)
        open("logs/custom.txt", "w").write("from the script")
        if mode == "fail":
            print("about to fail", file=sys.stderr)
            raise SystemExit(3)
        if mode == "slow":
            for i in range(600):
                print("tick", i, flush=True)
                time.sleep(0.1)
    """))
    return root


def test_good_script_completes_with_outputs_logs_and_metrics(workspace, project, target_name):
    env = Environment.from_existing_interpreter("current")
    env.environment_variables = {"DATA_ROOT": "/data/here"}  # $VAR in arguments: from the run's environment
    config = ScriptRunConfig(source_directory=project, script="src/train.py", compute_target=target_name,
                             arguments=["ok", "--data", "$DATA_ROOT/x", "--lr", 0.5], environment=env)
    run = Experiment(workspace, "contract").submit(config)
    assert run.get_status() in ("Queued", "Preparing", "Starting", "Running")
    details = run.wait_for_completion()
    assert details["status"] == "Completed" and details["exitCode"] == 0 and details["target"] == target_name
    assert details["runDefinition"]["arguments"] == ["ok", "--data", "$DATA_ROOT/x", "--lr", "0.5"]
    assert run.get_metrics() == {"mode": "ok"}
    files = set(run.get_file_names())
    assert {"outputs/result.txt", "logs/user_log_0.txt", "logs/custom.txt", "logs/runyard/supervisor.txt"} <= files
    log = "".join(get_target(workspace, target_name).log_iter(run.id))
    assert "args ['ok', '--data', '/data/here/x', '--lr', '0.5'] answer 42 cwd-has-helpers True" in log
    assert details["properties"]["ContentSnapshotId"]


def test_failing_script_fails_with_exit_code_and_keeps_its_files(workspace, project, target_name):
    run = Experiment(workspace, "contract").submit(
        ScriptRunConfig(source_directory=project, script="src/train.py", arguments=["fail"], compute_target=target_name))
    with pytest.raises(RunFailed, match=r"(?s)exited with code 3.*about to fail"):
        run.wait_for_completion()
    info = workspace.metadata.get_run(run.id)
    assert info.status.value == "Failed" and info.exit_code == 3
    assert info.error["rank"] == 0 and "about to fail" in info.error["last_lines"]
    assert {"outputs/result.txt", "logs/user_log_0.txt"} <= set(run.get_file_names())
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_cancel_twice_is_safe_and_logs_stream_live(workspace, project, target_name):
    target = get_target(workspace, target_name)
    run = Experiment(workspace, "contract").submit(
        ScriptRunConfig(source_directory=project, script="src/train.py", arguments=["slow"], compute_target=target_name))
    stream = target.log_iter(run.id, follow=True)
    seen = ""
    while "tick 3" not in seen:  # output arrives while the run is still running
        seen += next(stream)
    assert run.get_status() == "Running"
    assert target.describe(run.id).status == "Running"
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 5
    assert run.get_status() == "Canceled"
    run.cancel()
    target.cancel(run.id)
    assert run.get_status() == "Canceled"
    assert "tick 3" in "".join(target.log_iter(run.id))


def test_unknown_run_is_described_as_none(workspace, target_name):
    assert get_target(workspace, target_name).describe("no_such_run_1") is None


def test_submit_is_dryrun_then_schedule(workspace, project, target_name):
    """Targets are driven through the interface alone: record the run, store the snapshot, submit."""
    from runyard.compute import RunRef
    from runyard.status import RunStatus
    from runyard.store import snapshots as snapshot

    job = ScriptRunConfig(source_directory=project, script="src/train.py", compute_target=target_name).to_job_spec()
    snap = snapshot.take(job.source_directory)
    snapshot.store(snap, workspace.artifacts)
    exp = Experiment(workspace, "contract")
    info = workspace.metadata.create_run(exp.id, status=RunStatus.QUEUED, compute_target=target_name,
                                         definition=job.to_definition(), heartbeat=True)
    target = get_target(workspace, target_name)
    assert target.submit(job, RunRef(info.run_id, exp.name), snap) == info.run_id
    assert workspace.get_run(info.run_id).wait_for_completion()["status"] == "Completed"
    assert "answer 42" in "".join(target.log_iter(info.run_id))
