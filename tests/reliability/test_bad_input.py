"""Bad input gets a clear error before anything runs (issue 21 §6): each of these was accepted or crashed before."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runyard import Datastore, Experiment, ScriptRunConfig, ValidationError
from runyard.errors import ConfigError

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text("import sys; print(sys.argv[1:])\n")
    return root


def test_a_command_line_string_is_split_like_a_shell(project):
    spec = ScriptRunConfig(str(project), "train.py", arguments="--lr 0.1 --name 'two words'").to_job_spec()
    assert spec.arguments == ("--lr", "0.1", "--name", "two words")
    with pytest.raises(ValidationError, match="cannot be split like a command line"):
        ScriptRunConfig(str(project), "train.py", arguments="--name 'unclosed")
    with pytest.raises(ValidationError, match="must be a list"):
        ScriptRunConfig(str(project), "train.py", arguments=b"--lr 0.1")


def test_a_distributed_config_given_by_name_is_used_or_refused(project):
    spec = ScriptRunConfig(str(project), "train.py", distributed_job_config="mpi").to_job_spec()
    assert spec.distributed["backend"] == "mpi"
    with pytest.raises(ConfigError, match="unknown distributed_backend 'mpy'"):
        ScriptRunConfig(str(project), "train.py", distributed_job_config="mpy").to_job_spec()


def test_log_refuses_what_it_would_drop_or_store_wrongly(workspace):
    run = Experiment(workspace, "bad").start_logging(outputs=False)
    with pytest.raises(ValidationError, match="metric name must be a non-empty string, got None"):
        run.log(None, 1)
    with pytest.raises(ValidationError, match="got \\['x'\\]"):
        run.log(["x"], 1)
    with pytest.raises(ValidationError, match="metric 'x': step must be an integer, got 'abc'"):
        run.log("x", 1, step="abc")
    with pytest.raises(ValidationError, match="step must be an integer, got 1.5"):
        run.log("x", 1, step=1.5)
    with pytest.raises(ValidationError, match="does not fit in 64 bits"):
        run.log("x", 1, step=2**64)
    with pytest.raises(ValidationError, match="same number of values, got a: 2, b: 3"):
        run.log_table("t", {"a": [1, 2], "b": [1, 2, 3]})
    run.log("x", 1, step=3.0)  # a whole float is a step
    run.log_table("t", {"a": [1, 2], "b": ["u", "v"]})
    run.complete()
    assert run.get_metrics() == {"x": 1, "t": {"a": [1, 2], "b": ["u", "v"]}}


def test_azure_blob_names_and_protocol_follow_azure(workspace):
    blob = Datastore.register_azure_blob_container(workspace, "blobs", container_name="images", account_name="acct",
                                                   account_key="a2V5", skip_validation=True)
    assert blob.describe()["protocol"] == "https"
    local = Datastore.register_azure_blob_container(workspace, "emu", container_name="images", account_name="acct",
                                                    blob_endpoint="http://127.0.0.1:10000/acct", skip_validation=True)
    assert local.describe()["protocol"] == "http"
    for bad in ("c", "Images", "a--b", "-ab", "x" * 64):
        with pytest.raises(ValidationError, match="container_name .* is not a valid name: 3–63 lowercase"):
            Datastore.register_azure_blob_container(workspace, "b2", container_name=bad, account_name="acct",
                                                    skip_validation=True)
    with pytest.raises(ValidationError, match="contradicts"):
        Datastore.register_azure_blob_container(workspace, "b3", container_name="images", account_name="acct",
                                                protocol="https", blob_endpoint="http://127.0.0.1:1/a",
                                                skip_validation=True)


def _cli(workspace, *args, folder=None):
    env = {**os.environ, **workspace.environment_variables()}
    argv = [sys.executable, "-m", "runyard", *(["-w", str(folder)] if folder else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env)


def test_cli_refuses_what_it_cannot_show(workspace, tmp_path):
    run = Experiment(workspace, "cli").start_logging(outputs=False)
    run.log("loss", 0.5)
    run.complete()
    for args, message in (
        (("logs", run.id, "--rank", "99"), "has 1 process(es): --rank is 0"),
        (("logs", run.id, "--rank", "-1"), "-1 is not in the range x>=0"),
        (("metrics", run.id, "--name", "nosuch"), "has no metric 'nosuch'; it has: loss"),
        (("runs", "list", "-n", "-5"), "-5 is not in the range x>=1"),
    ):
        proc = _cli(workspace, *args)
        assert proc.returncode != 0 and message in " ".join((proc.stdout + proc.stderr).split()), (args, proc.stderr)
    mistyped = tmp_path / "no-such-workspace"
    proc = _cli(workspace, "runs", "list", folder=mistyped)
    assert proc.returncode == 1 and "no runyard workspace at" in proc.stderr and "runyard init" in proc.stderr
    assert not mistyped.exists()  # nothing was created
    assert _cli(workspace, "runs", "list", folder=workspace.path).returncode == 0
