"""Runs in containers on a real Docker engine (scripts/dockerd.sh starts a private one; scripts/test.sh builds
runyard's base image offline first): scripts log and write outputs from inside the image, environments are built
inside it once, MPI/DDP/parameter-server jobs run a container per process (mpirun: one for the job), and cancel,
timeouts and out-of-memory kills leave no container behind."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import env_with

from runyard import (
    ComputeError,
    ConfigError,
    DockerConfiguration,
    Environment,
    Experiment,
    MpiConfiguration,
    PyTorchConfiguration,
    ScriptRunConfig,
    TensorflowConfiguration,
    Workspace,
)
from runyard.compute import get_target
from runyard.environments import BASE_IMAGE, Engine
from runyard.environments.docker import RUN_LABEL
from runyard.errors import RunyardWarning

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module", autouse=True)
def _engine():
    """The engine and the base image must be there: scripts/test.sh starts one and builds the image (not a skip)."""
    from runyard.environments.docker import engine_problem

    problem = engine_problem()
    assert problem is None, f"{problem}: eval \"$(bash scripts/dockerd.sh start)\" && runyard image build-base"
    assert Engine.from_env().image(BASE_IMAGE) is not None, f"no {BASE_IMAGE}: runyard image build-base"


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("docker-envs")  # one cache for the module: each image/spec is built once


@pytest.fixture
def ws(tmp_path, local_packages, env_dir, monkeypatch):
    monkeypatch.setenv("RUNYARD_ENV_DIR", str(env_dir))
    return Workspace(tmp_path / "ws")


IN_CONTAINER = 'open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].endswith(b"docker-init")'  # --init's PID 1


def write(folder: Path, name: str, code: str) -> Path:
    """``code`` as ``folder/name``; ``IN_CONTAINER`` in it becomes the test of whether it runs in a container."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(code).replace("IN_CONTAINER", IN_CONTAINER))
    return folder


def log_of(ws, run, rank: int = 0) -> str:
    return "".join(get_target(ws, "local").log_iter(run.id, rank=rank))


def containers_of(run) -> list:
    return Engine.from_env().containers(RUN_LABEL, run.id)


def base_image() -> Environment:
    return Environment.from_docker_image("base", BASE_IMAGE)


TRAIN = """
    import os, sys
    from runyard import Run
    run = Run.get_context()
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.txt", "w") as f:
        f.write("weights")
    st = os.stat("outputs/model.txt")
    print("python", sys.executable, sys.version.split()[0], "in container", IN_CONTAINER,
          "owner", st.st_uid, "me", os.getuid(), "cwd", os.getcwd())
"""


def test_a_script_in_the_base_image_logs_metrics_and_writes_outputs(ws, tmp_path):
    proj = write(tmp_path / "proj", "train.py", TRAIN)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=base_image()))
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert "outputs/model.txt" in run.get_file_names()
    out = log_of(ws, run)
    import os

    assert "in container True" in out and f"owner {os.getuid()} me {os.getuid()}" in out
    assert " 3.11." in out and "/bin/python" in out  # the image's python (Debian's 3.11), through the client's venv
    assert containers_of(run) == []  # removed afterwards


def test_pip_packages_are_built_inside_the_image_once_then_start_from_the_cache(ws, tmp_path):
    proj = write(tmp_path / "proj", "tab.py", """
        import tabulate, sys
        print("tabulate", tabulate.__version__, "from", tabulate.__file__)
    """)
    env = env_with("tab", "tabulate")
    env.docker.enabled, env.docker.base_image = True, BASE_IMAGE
    first = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "tab.py", environment=env))
    assert first.wait_for_completion()["status"] == "Completed"
    assert "logs/runyard/environment_build.txt" in first.get_file_names()
    second = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "tab.py", environment=env))
    assert second.wait_for_completion()["status"] == "Completed"
    assert "logs/runyard/environment_build.txt" not in second.get_file_names()  # nothing built: from the cache
    assert "tabulate" in log_of(ws, second) and "/docker-envs" in log_of(ws, second)


def test_a_two_rank_mpi_job_runs_mpirun_inside_one_container(ws, tmp_path):
    proj = write(tmp_path / "mpi", "job.py", """
        import os
        from runyard import Run
        rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
        Run.get_context().log("rank_seen", rank)
        print("rank", rank, "of", os.environ["OMPI_COMM_WORLD_SIZE"], "in container", IN_CONTAINER)
    """)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "job.py", environment=base_image(),
                                                          distributed_job_config=MpiConfiguration(2)))
    assert run.wait_for_completion()["status"] == "Completed", log_of(ws, run)
    assert "rank 0 of 2 in container True" in log_of(ws, run, 0) and "rank 1 of 2" in log_of(ws, run, 1)
    metrics = run.get_metrics()
    assert metrics["rank_seen"] == 0 and metrics["rank_seen/rank1"] == 1
    assert containers_of(run) == []


@pytest.mark.torch
def test_a_two_process_ddp_job_runs_a_container_per_rank(ws, tmp_path):
    from runyard.train.dnn import PyTorch

    proj = write(tmp_path / "ddp", "ddp.py", """
        import os
        import torch, torch.distributed as dist
        from runyard import Run
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(10):
            x = torch.rand(16, 4, generator=torch.Generator().manual_seed(rank * 100 + step))
            opt.zero_grad(); loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean(); loss.backward(); opt.step()
            Run.get_context().log("loss", loss.item())
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        inside = IN_CONTAINER
        print(f"rank {rank}/{world} in container {inside} "
              f"equal {all(torch.equal(gathered[0], t) for t in gathered)}", flush=True)
        dist.destroy_process_group()
        Run.get_context().flush()
        os._exit(0)
    """)
    est = PyTorch(proj, entry_script="ddp.py", framework_version="2.13", custom_docker_image=BASE_IMAGE,
                  distributed_training=PyTorchConfiguration("Gloo", process_count=2))
    run = Experiment(ws, "docker").submit(est)
    assert run.wait_for_completion()["status"] == "Completed", log_of(ws, run)
    assert "rank 0/2 in container True equal True" in log_of(ws, run, 0)
    assert "rank 1/2 in container True equal True" in log_of(ws, run, 1)
    assert len(run.get_metrics()["loss/rank1"]) == 10
    assert containers_of(run) == []


def test_parameter_server_jobs_run_each_task_in_its_own_container_and_stop_the_servers(ws, tmp_path):
    proj = write(tmp_path / "ps", "task.py", """
        import json, os, time
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        print("task", task["type"], task["index"], "in container", IN_CONTAINER, flush=True)
        if task["type"] == "ps":
            time.sleep(600)  # a parameter server serves until runyard stops it
    """)
    config = ScriptRunConfig(proj, "task.py", environment=base_image(),
                             distributed_job_config=TensorflowConfiguration(worker_count=2, parameter_server_count=1))
    run = Experiment(ws, "docker").submit(config)
    assert run.wait_for_completion()["status"] == "Completed"
    logs = [log_of(ws, run, r) for r in range(3)]
    assert sum("in container True" in text for text in logs) == 3 and any("task ps 0" in text for text in logs)
    assert containers_of(run) == []  # the parameter server's container too


def test_cancel_stops_and_removes_every_container_of_the_run_within_seconds(ws, tmp_path):
    proj = write(tmp_path / "slow", "slow.py", """
        import time
        print("started", flush=True)
        time.sleep(600)
    """)
    run = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "slow.py", environment=base_image(),
                                                          distributed_job_config=PyTorchConfiguration(process_count=2)))
    deadline = time.monotonic() + 60
    while len([c for c in containers_of(run) if c["State"] == "running"]) < 2:
        assert time.monotonic() < deadline, run.get_status()
        time.sleep(0.2)
    started = time.monotonic()
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert time.monotonic() - started < 5
    assert containers_of(run) == []


def test_a_timeout_stops_the_containers_and_fails_the_run(ws, tmp_path):
    proj = write(tmp_path / "slow", "slow.py", "import time\ntime.sleep(600)\n")
    config = ScriptRunConfig(proj, "slow.py", environment=base_image(), max_run_duration_seconds=2)
    run = Experiment(ws, "docker").submit(config)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and details["error"]["code"] == "RunTimeout"
    assert containers_of(run) == []


def test_a_container_killed_for_memory_fails_the_run_saying_out_of_memory(ws, tmp_path):
    proj = write(tmp_path / "oom", "hog.py", """
        print("allocating", flush=True)
        hog = [bytearray(16 << 20) for _ in range(64)]  # 1 GiB, touched
        print("never here")
    """)
    config = ScriptRunConfig(proj, "hog.py", environment=base_image(),
                             docker_runtime_config=DockerConfiguration(use_docker=True, memory="64m"))
    run = Experiment(ws, "docker").submit(config)
    error = run.wait_for_completion(raise_on_error=False)["error"]
    assert error["rank"] == 0 and error["exit_code"] == 137
    assert "hog.py (rank 0) was killed: out of memory (its container's memory limit is 64m)" in error["message"]
    assert "allocating" in "\n".join(error["last_lines"])
    assert containers_of(run) == []


def test_a_dockerfile_is_built_once_and_an_image_without_python_is_a_clear_error(ws, tmp_path):
    proj = write(tmp_path / "proj", "train.py", TRAIN)
    write(proj, "marker.py", "print('marker:', open('/etc/marker').read().strip())\n")
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo built-from-dockerfile-{tmp_path.name} > /etc/marker\n"
    ok = Environment.from_dockerfile("df", dockerfile)
    runs = []
    for _ in range(2):
        runs.append(Experiment(ws, "docker").submit(ScriptRunConfig(proj, "marker.py", environment=ok)))
        assert runs[-1].wait_for_completion()["status"] == "Completed"
        assert f"marker: built-from-dockerfile-{tmp_path.name}" in log_of(ws, runs[-1])  # in the Dockerfile's image
    build_log = Path(runs[0].download_file("logs/runyard/environment_build.txt", tmp_path / "b0.txt")).read_text()
    assert "building image runyard/dockerfile:" in build_log and "Successfully built" in build_log
    assert "logs/runyard/environment_build.txt" not in runs[1].get_file_names()  # image and environment: cached
    try:
        import hashlib

        tag = f"runyard/dockerfile:{hashlib.sha256(dockerfile.encode()).hexdigest()[:16]}"
        assert Engine.from_env().image(tag) is not None
    finally:
        Engine.from_env().remove_image(tag)
    no_python = Environment.from_dockerfile("nopy", f"FROM {BASE_IMAGE}\nRUN rm -f /usr/bin/python3*\n")
    failed = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=no_python))
    error = failed.wait_for_completion(raise_on_error=False)["error"]
    assert error["code"] == "EnvironmentBuildFailed"
    assert "has no python: neither python3 nor python is on its PATH" in error["message"]
    broken = Environment.from_dockerfile("broken", f"FROM {BASE_IMAGE}\nRUN echo about-to-fail && exit 3\n")
    failed = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=broken))
    error = failed.wait_for_completion(raise_on_error=False)["error"]
    assert error["code"] == "EnvironmentBuildFailed" and "docker build failed" in error["message"]
    build_log = Path(failed.download_file("logs/runyard/environment_build.txt", tmp_path / "build.txt")).read_text()
    assert "about-to-fail" in build_log and "returned a non-zero code: 3" in build_log


def test_bad_input_is_a_clear_error_before_anything_runs(ws, tmp_path, monkeypatch):
    proj = write(tmp_path / "proj", "train.py", TRAIN)
    unknown = Environment.from_docker_image("nope", "no/such-image:1")
    with pytest.raises(ConfigError, match=r"'no/such-image:1' is not on this machine's Docker engine.*never pulls.*"
                                          r"Local images: .*runyard/base:bookworm"):
        Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=unknown))
    assert ws.metadata.list_runs() == []
    env = base_image()
    with pytest.warns(RunyardWarning, match=r"DockerConfiguration\(use_docker=False\) wins"):
        run = Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=env,
                                                              docker_runtime_config=DockerConfiguration(False)))
    assert run.wait_for_completion()["status"] == "Completed" and "in container False" in log_of(ws, run)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(ComputeError, match=r"no Docker engine answers at unix://.*no-engine.sock.*scripts/dockerd.sh"):
        Experiment(ws, "docker").submit(ScriptRunConfig(proj, "train.py", environment=env))
    assert len(ws.metadata.list_runs()) == 1  # only the run without a container


def test_cli_submit_docker_image_and_a_gpu_dry_run(ws, tmp_path, monkeypatch):
    proj = write(tmp_path / "proj", "train.py", TRAIN)
    cli = [str(Path(sys.executable).parent / "runyard"), "-w", str(ws.path)]
    out = subprocess.run([*cli, "submit", "train.py", "-s", str(proj), "--docker-image", BASE_IMAGE, "--memory", "256m",
                          "--wait"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "in container True" in out.stdout
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two GPUs as far as runyard can tell: a run gets one (its slot's)
    dry = subprocess.run([*cli, "submit", "train.py", "-s", str(proj), "--docker-image", BASE_IMAGE, "--use-gpu",
                          "--memory", "256m", "--cpus", "1.5", "--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert '--gpus "device=0"' in dry.stdout and f" {BASE_IMAGE} " in dry.stdout
    assert "--memory 256m --memory-swap 256m --cpus 1.5" in dry.stdout


def test_a_no_code_sklearn_model_packaged_as_an_image_answers_score(ws, tmp_path):
    import pickle

    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from runyard import Model
    from runyard.deploy import LocalWebservice

    x, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(x[:500], y[:500])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(clf))
    model = Model.register(ws, str(tmp_path / "model.pkl"), "digits", model_framework="ScikitLearn")
    package = Model.package(ws, [model], image_name="runyard-test/digits", image_label="1")
    package.wait_for_creation(show_output=False)
    assert package.location == "runyard-test/digits:1"
    engine = Engine.from_env()
    assert engine.image("runyard-test/digits:1") is not None
    try:
        service = LocalWebservice.deploy_from_image(ws, "digits-img", package.location,
                                                    LocalWebservice.deploy_configuration())
        service.wait_for_deployment(timeout_sec=120)
        assert service.state == "Healthy"
        request = urllib.request.Request(service.scoring_uri, data=json.dumps({"data": x[:3].tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.loads(resp.read())
        assert answer == clf.predict(x[:3]).tolist()
        service.delete()
        assert engine.containers("runyard.service") == []
        cli = subprocess.run([str(Path(sys.executable).parent / "runyard"), "-w", str(ws.path), "deploy", "digits",
                              "--image", "runyard-test/digits-cli:2", "--name", "digits-cli", "--auth"],
                             capture_output=True, text=True, timeout=600)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert "built image runyard-test/digits-cli:2" in cli.stdout and "Healthy" in cli.stdout
        keyed = LocalWebservice(ws, "digits-cli")
        assert keyed.run({"data": x[:2].tolist()}) == clf.predict(x[:2]).tolist()  # with its key
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(urllib.request.Request(keyed.scoring_uri, data=b'{"data": [[0]]}'), timeout=30)
        keyed.delete()
        assert engine.containers("runyard.service") == []
    finally:
        engine.remove_image("runyard-test/digits:1")
        engine.remove_image("runyard-test/digits-cli:2")
