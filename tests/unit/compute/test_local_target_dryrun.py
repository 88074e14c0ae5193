"""The local target's request, built without side effects (what `runyard submit --dry-run` prints), and the
processes the runtime asks the launcher for when the run gets its slot."""
from __future__ import annotations

import json
import sys

import pytest

from runyard import ComputeError, ConfigError, Workspace
from runyard.compute import RunRef, get_target
from runyard.config.job import build_job
from runyard.runtime import launch
from runyard.runtime.request import LocalRequest, request_from_dict
from runyard.store import snapshots as snapshot


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def job(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "train.py").write_text("")
    return build_job(source_directory=tmp_path / "proj", entry_script="train.py", arguments=["--lr", 0.1, "$HOME"])


def dryrun(ws, job, run=RunRef("exp_1_abc", "exp", "parent_1_x")):
    return get_target(ws, "local").dryrun(job, run, snapshot.take(job.source_directory))


def test_request_holds_the_job_and_its_environment_not_its_processes(ws, job, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "3")
    request = dryrun(ws, job)
    assert isinstance(request, LocalRequest)
    assert request.run_id == "exp_1_abc" and request.pool == "cpu" and request.capacity == 3
    assert request.launcher == "single" and request.job == job and "processes" not in request.to_dict()
    env = request.run_env
    assert env["RUNYARD_RUN_ID"] == "exp_1_abc" and env["RUNYARD_PARENT_RUN_ID"] == "parent_1_x"
    assert env["RUNYARD_EXPERIMENT_NAME"] == "exp"
    assert env["RUNYARD_WORKSPACE"] == str(ws.path) and env["MLFLOW_TRACKING_URI"] == f"runyard://{ws.path}"
    assert env["PYTHONPATH"].split(":")[0] == request.workdir
    assert request_from_dict(json.loads(str(request))) == request  # JSON and back, in one place
    assert not (ws.path / "local").exists() and not (ws.path / "artifacts").exists()  # nothing written
    [proc] = launch.this_machine(request)
    assert proc.argv == (sys.executable, "-u", "train.py", "--lr", "0.1", "$HOME")  # expanded when the run starts
    assert proc.env["RUNYARD_RANK"] == "0" and proc.env["RUNYARD_RUN_ID"] == "exp_1_abc"


def test_gpu_runs_queue_on_gpu_slots(ws, tmp_path, monkeypatch):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "t.py").write_text("")
    gpu_job = build_job(source_directory=tmp_path / "g", entry_script="t.py", use_gpu=True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    request = dryrun(ws, gpu_job)
    assert request.pool == "gpu" and request.capacity == 2 and request.gpus == ("0", "1")
    # No GPU: the job runs on the CPU (as Azure's GPU image does on a CPU node), said at submit and in the run's log,
    # with the environment's CPU package variants; a target that requires a GPU refuses it.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    from runyard.compute import api
    from runyard.errors import RunyardWarning

    asked = []
    real_plan = api.environments.plan
    monkeypatch.setattr(api.environments, "plan", lambda root, spec, use_gpu, *a, **kw: asked.append(use_gpu) or
                        real_plan(root, spec, use_gpu, *a))
    with pytest.warns(RunyardWarning, match="trains on the CPU.*RUNYARD_REQUIRE_GPU=1 to refuse"):
        request = dryrun(ws, gpu_job)
    assert asked == [False]  # the environment is planned with the CPU package variants
    assert request.pool == "cpu" and request.gpus == () and not request.job.use_gpu
    assert request.notes and "no GPU: the run trains on the CPU" in request.notes[0]
    assert request_from_dict(json.loads(str(request))) == request
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "1")
    with pytest.raises(ComputeError, match="no GPU.*requires one"):
        dryrun(ws, gpu_job)
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "no")
    with pytest.warns(RunyardWarning):
        dryrun(ws, gpu_job)
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "sometimes")
    with pytest.raises(ConfigError, match="RUNYARD_REQUIRE_GPU='sometimes' is not a valid flag"):
        get_target(ws, "local")


def test_settings_from_the_workspace_config_and_their_errors(tmp_path, job, monkeypatch):
    ws = Workspace.create(tmp_path / "p")
    config = ws.path / "config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "compute": {"local": {"max_concurrent_runs": 2, "log_max_mb": 5}}}))
    ws = Workspace(ws.path)
    assert get_target(ws, "local").settings["max_concurrent_runs"] == 2
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "7")  # the environment wins
    assert get_target(ws, "local").settings["max_concurrent_runs"] == 7
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "many")
    with pytest.raises(ConfigError, match=r"\$RUNYARD_LOCAL_MAX_RUNS='many' is not a valid int"):
        get_target(ws, "local")
    monkeypatch.delenv("RUNYARD_LOCAL_MAX_RUNS")
    config.write_text(json.dumps({**data, "compute": {"local": {"max_runs": 2}}}))
    with pytest.raises(ConfigError, match="unknown setting.*max_runs.*known: max_concurrent_runs"):
        get_target(Workspace(ws.path), "local")
    monkeypatch.setenv("RUNYARD_SUPERVISOR_START", "thread")
    with pytest.raises(ComputeError, match="supervisor_start must be 'auto' or 'spawn'"):
        dryrun(Workspace(tmp_path / "other"), job)


def test_launchers_get_the_free_ports_they_ask_for_when_the_run_starts(ws, job, monkeypatch):
    from runyard.launchers import Launcher, ProcessSpec

    class TwoPorts(Launcher):
        name = "two-ports"

        def ports_needed(self, job):
            return 2

        def processes(self, job, node):
            return [ProcessSpec(0, 0, ("echo", *map(str, node.ports)), {"MASTER_PORT": str(node.ports[0])})]

    request = dryrun(ws, job)
    monkeypatch.setattr(launch, "launcher_for", lambda job: TwoPorts())
    [proc] = launch.this_machine(request)
    ports = [int(p) for p in proc.argv[1:]]
    assert len(set(ports)) == 2 and all(1024 < p < 65536 for p in ports)
    assert proc.env["MASTER_PORT"] == str(ports[0])
