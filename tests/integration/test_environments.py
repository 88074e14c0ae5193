"""Built environments for real: uv builds from this machine's local package sources, runs use them."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import env_with

from runyard import (
    ComputeError,
    Environment,
    Experiment,
    RunFailed,
    ScriptRunConfig,
    Workspace,
)
from runyard import environments as E
from runyard.compute import get_target
from runyard.environments import builder
from runyard.errors import ConfigError, RunyardWarning

pytestmark = [pytest.mark.integration]


@pytest.fixture
def ws(tmp_path, local_packages):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "show.py").write_text(textwrap.dedent("""
        import importlib, os, sys
        from runyard import Run
        run = Run.get_context()
        print("python", sys.executable)
        for name in sys.argv[1:]:
            mod = importlib.import_module(name)
            print("imported", name, "from", os.path.dirname(mod.__file__))
        print("OMP", os.environ.get("OMP_NUM_THREADS"), "CUDA", os.environ.get("CUDA_VISIBLE_DEVICES"))
        run.log("ok", 1)
    """))
    return root


def submit(ws, project, env, *modules, **kw):
    return Experiment(ws, "env").submit(ScriptRunConfig(project, "show.py", arguments=list(modules), environment=env, **kw))


def log_of(ws, run):
    return "".join(get_target(ws, "local").log_iter(run.id))


def build_log_of(ws, run):
    return "".join(get_target(ws, "local").build_log_iter(run.id))


def test_a_built_environment_has_its_packages_and_the_base_interpreter_does_not(ws, project, capsys):
    env = env_with("tabulate-env", "tabulate")
    env.environment_variables = {"OMP_NUM_THREADS": "2"}
    run = submit(ws, project, env, "tabulate")
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "[2/3] installing 1 package(s): tabulate" in out and "environment ready" in out  # build shown live
    key = run.get_details()["properties"]["runyard.environment_key"]
    log = log_of(ws, run)
    assert f"python {ws.path / 'envs' / key / 'bin' / 'python'}" in log
    assert f"imported tabulate from {ws.path / 'envs' / key}" in log and "OMP 2" in log
    assert run.get_metrics() == {"ok": 1}  # runyard's client works inside the environment
    assert "logs/runyard/environment_build.txt" in run.get_file_names()
    site = next((ws.path / "envs" / key).glob("lib/python3*/site-packages"))
    assert (site / "sqlalchemy").is_symlink()  # the client's packages are linked from this interpreter, and
    linked_meta = next(site.glob("sqlalchemy-*.dist-info"))
    assert not (linked_meta / "RECORD").exists()  # pip cannot uninstall through the link
    base = subprocess.run([sys.executable, "-c", "import tabulate"], capture_output=True)
    assert base.returncode != 0  # the test interpreter never had it
    # The second run reuses it: no build, nothing in the build log (the time a hit costs is in bench/).
    plan = E.plan(ws.path / "envs", env.to_spec(), tracking_uri=ws.tracking_uri)
    assert plan.ready and plan.key == key
    again = submit(ws, project, env, "tabulate")
    again.wait_for_completion()
    assert build_log_of(ws, again) == "" and "imported tabulate" in log_of(ws, again)


def test_two_concurrent_submissions_build_once(ws, project):
    env = env_with("shared", "toolz")
    runs = [submit(ws, project, env, "toolz") for _ in range(2)]
    for run in runs:
        run.wait_for_completion()
    logs = [build_log_of(ws, r) for r in runs]
    assert sum(log.count("creating a virtual environment") for log in logs) == 1, logs
    assert [p.name for p in (ws.path / "envs").iterdir() if p.is_dir()] == [runs[0].get_properties()["runyard.environment_key"]]


def test_a_build_that_fails_fails_the_run_and_leaves_nothing(ws, project):
    env = env_with("broken", "runyard-no-such-package-xyz")
    run = submit(ws, project, env)
    with pytest.raises(RunFailed) as raised:
        run.wait_for_completion()
    error = run.get_details()["error"]
    assert error["code"] == "EnvironmentBuildFailed"
    assert "runyard-no-such-package-xyz" in error["message"] and "could not be built" in error["message"]
    assert "last lines of the environment build" in str(raised.value)
    key = run.get_properties()["runyard.environment_key"]
    assert not (ws.path / "envs" / key).exists()  # no half-built environment
    assert not E.plan(ws.path / "envs", env.to_spec(), tracking_uri=ws.tracking_uri).ready  # and not cached
    assert "user_log_0.txt" not in " ".join(run.get_file_names())  # the script never started


def test_inheriting_environment_adds_only_what_the_base_lacks(ws, project):
    pytest.importorskip("numpy")
    env = env_with("inherit", "numpy", "termcolor", inherit_base_packages=True)
    run = submit(ws, project, env, "numpy", "termcolor")
    run.wait_for_completion()
    key = run.get_properties()["runyard.environment_key"]
    site = next((ws.path / "envs" / key).glob("lib/python3*/site-packages"))
    log = log_of(ws, run)
    assert f"imported termcolor from {site}" in log
    import numpy

    assert f"imported numpy from {os.path.dirname(numpy.__file__)}" in log  # the base's copy
    assert not any(p.name.startswith("numpy") for p in site.iterdir())  # nothing the base already has


def test_registered_environments_have_versions(ws, project):
    env = env_with("reg", "tabulate")
    assert env.register(ws).version == "1"
    assert env.register(ws).version == "1"  # the same definition again is not a new version
    env.python.conda_dependencies.add_pip_package("toolz")
    assert env.register(ws).version == "2"
    assert Environment.get(ws, "reg", version=1).python.conda_dependencies.pip_packages == ["tabulate"]
    assert Environment.get(ws, "reg").python.conda_dependencies.pip_packages == ["tabulate", "toolz"]
    from runyard.config import curated

    listed = Environment.list(ws)  # the registered ones after Azure's curated names (as Azure lists them)
    assert [n for n in listed if not curated.is_curated(n)] == ["reg"] and listed["reg"].version == "2"
    with pytest.raises(Exception, match="versions: 1, 2"):
        Environment.get(ws, "reg", version=7)
    run = submit(ws, project, Environment.get(ws, "reg"), "toolz")
    assert run.wait_for_completion()["status"] == "Completed"


def test_docker_environment_is_a_clear_error_without_an_engine(ws, project, tmp_path, monkeypatch):
    env = env_with("box", "tabulate")
    env.docker.enabled, env.docker.base_image = True, "runyard/base:bookworm"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing-listens-here.sock")
    with pytest.raises(ComputeError, match=r"no Docker engine answers at unix://.*nothing-listens-here.sock .*"
                                           r"start one .*scripts/dockerd.sh start"):
        submit(ws, project, env)
    assert ws.metadata.list_runs() == []  # nothing was stored


def test_use_gpu_without_a_gpu_runs_on_the_cpu_unless_a_gpu_is_required(ws, project, monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    user = Environment.from_existing_interpreter("current")
    with pytest.warns(RunyardWarning, match="no GPU: the run trains on the CPU"):
        run = Experiment(ws, "env").submit(_gpu_estimator(project, user))
    assert run.wait_for_completion()["status"] == "Completed" and "CUDA \n" in log_of(ws, run)  # on the CPU
    supervisor = _file_text(run, "logs/runyard/supervisor.txt", tmp_path)
    assert "no GPU: the run trains on the CPU" in supervisor  # said in the run's log too
    assert run.get_details()["runDefinition"]["useGpu"] is True  # what was asked stays recorded
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "1")
    before = ws.metadata.count_runs()
    with pytest.raises(ComputeError, match="requires one"):
        Experiment(ws, "env").submit(_gpu_estimator(project, user))
    assert ws.metadata.count_runs() == before  # refused before anything was stored


def _file_text(run, name, tmp_path):
    target = tmp_path / name.replace("/", "_")
    run.download_file(name, str(target))
    return target.read_text()


def test_gpu_runs_get_their_slot_gpus(ws, project, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")  # two GPUs as far as runyard can tell: one per GPU slot
    user = Environment.from_existing_interpreter("current")
    first = Experiment(ws, "env").submit(_gpu_estimator(project, user, "--sleep"))
    second = Experiment(ws, "env").submit(_gpu_estimator(project, user))
    second.wait_for_completion()
    first.wait_for_completion()
    seen = {log_of(ws, r).split("CUDA ")[1].split()[0] for r in (first, second)}
    assert seen == {"4", "7"}


def _gpu_estimator(project, env, *args):
    from runyard.train.estimator import Estimator

    (project / "gpu.py").write_text("import os, sys, time\nprint('CUDA', os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
                                    "time.sleep(1.5 if '--sleep' in sys.argv else 0)\n")
    return Estimator(project, entry_script="gpu.py", arguments=list(args), use_gpu=True, environment_definition=env)


def test_cli_env_build_list_show_prune(ws, tmp_path):
    (tmp_path / "requirements.txt").write_text("humanize\n")
    cli = [os.path.join(os.path.dirname(sys.executable), "runyard")]

    def runyard(*args):
        proc = subprocess.run([*cli, "-w", str(ws.path), *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "registered environment hum version 1" in runyard("env", "register", "hum", "-r", str(tmp_path / "requirements.txt"))
    out = runyard("env", "build", "hum")
    assert "installing 1 package(s): humanize" in out and "built hum (" in out
    key = out.rsplit("built hum (", 1)[1].split(")")[0]
    assert "is built" in runyard("env", "build", "hum")
    listing = runyard("env", "list")
    assert key in listing and re.search(r"1 built, [\d.]+ (KB|MB) in all", listing)
    assert "humanize==" in runyard("env", "show", "hum")
    assert f"would remove {key}" in runyard("env", "prune", "--all", "--dry-run")
    assert (ws.path / "envs" / key).is_dir()
    assert "removed 1 environment(s)" in runyard("env", "prune", "--all")
    assert not (ws.path / "envs" / key).exists()
    assert "not built yet" in (shown := runyard("env", "show", "hum")) and "installs: humanize" in shown


def test_cli_submit_with_requirements(ws, project, tmp_path):
    (tmp_path / "req.txt").write_text("toolz\n")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "runyard"), "-w", str(ws.path), "submit",
                           "-s", str(project), "show.py", "--requirements", str(tmp_path / "req.txt"), "--wait",
                           "--", "toolz"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "installing 1 package(s): toolz" in proc.stdout and f"imported toolz from {ws.path / 'envs'}" in proc.stdout


def test_cancel_stops_a_build_and_leaves_nothing(ws, project, tmp_path):
    slow = tmp_path / "slowpkg"  # a local package whose build takes a minute
    slow.mkdir()
    (slow / "setup.py").write_text("import time\nfrom setuptools import setup\ntime.sleep(60)\n"
                                   "setup(name='slowpkg', version='0.1', py_modules=[])\n")
    env = env_with("slow", str(slow))
    run = submit(ws, project, env)
    key = run.get_properties()["runyard.environment_key"]
    deadline = time.monotonic() + 60
    while "installing 1 package" not in build_log_of(ws, run):
        assert time.monotonic() < deadline and not run.get_status() in ("Failed", "Completed"), build_log_of(ws, run)
        time.sleep(0.1)
    started = time.monotonic()
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Canceled"
    assert time.monotonic() - started < 8  # the build command is killed at once, not waited for
    deadline = time.monotonic() + 10
    while (ws.path / "envs" / key).exists():  # the build thread removes what it had made
        assert time.monotonic() < deadline
        time.sleep(0.1)
    import psutil

    def building() -> list:  # uv and the build backend running slowpkg's setup.py
        found = []
        for proc in psutil.process_iter(["cmdline", "cwd"]):
            try:
                if any(str(slow) in part for part in (proc.info["cmdline"] or []) + [proc.info["cwd"] or ""]):
                    found.append(proc)
            except psutil.Error:
                pass
        return found

    deadline = time.monotonic() + 5
    while building():
        assert time.monotonic() < deadline, [p.info for p in building()]
        time.sleep(0.1)


def test_a_build_command_and_what_it_started_stop_at_the_deadline_or_on_cancel():
    # The command starts a child that keeps the output pipe open: only killing the whole group ends the read.
    import threading

    from runyard.errors import EnvironmentBuildError

    script = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              " print('started', flush=True); time.sleep(60)")
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(EnvironmentBuildError, match="took too long"):
        builder._run([sys.executable, "-c", script], lines.append, builder._Limit(time.monotonic() + 1))
    assert 1 <= time.monotonic() - started < 5 and "started" in lines

    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(E.BuildCanceled):
        builder._run([sys.executable, "-c", script], lines.append, builder._Limit(time.monotonic() + 600, cancel))
    assert time.monotonic() - started < 5
    with pytest.raises(E.BuildCanceled):  # nothing starts once canceled
        builder._run([sys.executable, "-c", "print('never')"], lines.append, builder._Limit(time.monotonic() + 600, cancel))
    assert "never" not in lines


def test_chainer_is_refused_at_submit_with_the_way_out(ws, project):
    """Azure's Chainer estimator: Chainer's releases run on Python <= 3.8 only, so an environment built here is
    refused before anything is stored (not a resolver failure in the run), naming a container image as the way out."""
    from runyard.train.dnn import Chainer

    py = "%d.%d" % sys.version_info[:2]
    with pytest.raises(ConfigError, match=rf"Chainer cannot be installed for Python {py}: .*<= 3.8.*"
                                          r"custom_docker_image=.*user_managed=True"):
        Experiment(ws, "chainer").submit(Chainer(str(project), entry_script="show.py"))
    assert ws.metadata.count_runs() == 0
    boxed = Chainer(str(project), entry_script="show.py", custom_docker_image="lab/chainer:py38", user_managed=True)
    env = boxed.environment()
    assert env.docker.enabled and env.docker.base_image == "lab/chainer:py38" and env.python.framework is None
