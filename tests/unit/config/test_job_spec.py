"""Run configurations validate fully into a JobSpec before anything runs; errors say what to do."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from runyard import Environment, ScriptRunConfig
from runyard.config.job import JobSpec, build_job, normalize_arguments, script_params_to_arguments
from runyard.errors import ConfigError, NotFound, ValidationError
from runyard.runtime.launch import expand_vars
from runyard.train.estimator import Estimator


@pytest.fixture
def proj(tmp_path):
    (tmp_path / "proj" / "src").mkdir(parents=True)
    (tmp_path / "proj" / "train.py").write_text("print('hi')\n")
    (tmp_path / "proj" / "src" / "model.py").write_text("")
    return tmp_path / "proj"


def test_script_params_get_dashes_flags_and_strings():
    assert script_params_to_arguments({"--lr": 0.01, "epochs": 3, "-v": None, "--name": "a b", "--ok": True}) == (
        "--lr", "0.01", "--epochs", "3", "-v", "--name", "a b", "--ok", "True")


def test_arguments_mixed_types_and_numpy_scalars():
    assert normalize_arguments(["--lr", 0.01, "--n", 5, "--big", 1e-7, np.float64(0.5), np.int64(7), False]) == (
        "--lr", "0.01", "--n", "5", "--big", "1e-07", "0.5", "7", "False")


def test_unserialisable_argument_names_its_position():
    with pytest.raises(ValidationError, match=r"arguments\[1\] is a dict"):
        normalize_arguments(["--x", {"a": 1}])
    with pytest.raises(ValidationError, match=r"script_params\['--y'\] is a object"):
        script_params_to_arguments({"--y": object()})
    assert normalize_arguments("--lr 0.1") == ("--lr", "0.1")  # a command line string, split as a shell would
    with pytest.raises(ValidationError, match="must be a list"):
        normalize_arguments(3)


def test_arguments_and_script_params_together_are_refused(proj):
    with pytest.raises(ConfigError, match="not both"):
        Estimator(proj, entry_script="train.py", script_params={"--a": 1}, arguments=["--b", 2]).to_job_spec()


def test_estimator_and_script_run_config_make_the_same_job(proj):
    a = Estimator(proj, entry_script="train.py", script_params={"lr": 0.01}, compute_target="local").to_job_spec()
    b = ScriptRunConfig(source_directory=proj, script="train.py", arguments=["--lr", 0.01]).to_job_spec()
    assert a == b
    assert a.source_directory == str(proj) and a.entry_script == "train.py" and a.interpreter == sys.executable
    assert JobSpec.from_definition(a.to_definition()) == a


def test_missing_source_directory(tmp_path):
    with pytest.raises(NotFound, match="source_directory 'nope' does not exist"):
        ScriptRunConfig(source_directory="nope", script="train.py").to_job_spec()


def test_misspelled_entry_script_suggests_the_closest(proj):
    with pytest.raises(NotFound, match=r"entry script 'trian.py' not found .* did you mean 'train.py'\?"):
        ScriptRunConfig(source_directory=proj, script="trian.py").to_job_spec()
    with pytest.raises(NotFound, match=r"did you mean 'src/model.py'"):
        ScriptRunConfig(source_directory=proj, script="src/modle.py").to_job_spec()


def test_entry_script_outside_the_source_directory(proj, tmp_path):
    (tmp_path / "outside.py").write_text("")
    with pytest.raises(ConfigError, match="outside source_directory"):
        ScriptRunConfig(source_directory=proj, script="../outside.py").to_job_spec()
    with pytest.raises(ConfigError, match="no entry script"):
        ScriptRunConfig(source_directory=proj).to_job_spec()


def test_an_absolute_entry_script_inside_is_made_relative(proj):
    assert ScriptRunConfig(source_directory=proj, script=proj / "src" / "model.py").to_job_spec().entry_script == "src/model.py"


@pytest.mark.parametrize("field,value", [("node_count", 0), ("process_count_per_node", -1), ("node_count", 1.5)])
def test_counts_must_be_positive_whole_numbers(proj, field, value):
    with pytest.raises(ValidationError, match=field):
        build_job(source_directory=proj, entry_script="train.py", **{field: value})


def test_several_processes_need_a_distributed_backend(proj):
    with pytest.raises(ConfigError, match="needs a distributed backend"):
        build_job(source_directory=proj, entry_script="train.py", node_count=2)


@pytest.mark.parametrize("value", [0, -5, float("nan"), "10", True])
def test_max_run_duration_must_be_positive(proj, value):
    with pytest.raises(ValidationError, match="max_run_duration_seconds"):
        ScriptRunConfig(source_directory=proj, script="train.py", max_run_duration_seconds=value).to_job_spec()


def test_environment_interpreter_and_variables(proj, tmp_path):
    env = Environment.from_existing_interpreter("current")
    env.environment_variables = {"OMP_NUM_THREADS": 2}
    job = ScriptRunConfig(source_directory=proj, script="train.py", environment=env).to_job_spec()
    assert job.environment_variables == {"OMP_NUM_THREADS": "2"} and job.interpreter == sys.executable
    missing = Environment.from_existing_interpreter(str(tmp_path / "no-python"))
    with pytest.raises(ConfigError, match="not found or not executable"):
        ScriptRunConfig(source_directory=proj, script="train.py", environment=missing).to_job_spec()
    bad = Environment("e")
    bad.environment_variables = {"A=B": "1"}
    with pytest.raises(ValidationError, match="invalid environment variable name"):
        bad.to_spec()
    with pytest.raises(ValidationError, match="must be a runyard Environment"):
        ScriptRunConfig(source_directory=proj, script="train.py", environment="conda-env").to_job_spec()


def test_unknown_compute_target_lists_the_known_ones(proj, tmp_path):
    from runyard import Workspace
    from runyard.compute import get_target

    with pytest.raises(ConfigError, match=r"unknown compute target 'locl' — did you mean 'local'\? Known targets: local"):
        get_target(Workspace(tmp_path / "ws"), "locl")


def test_expand_vars_uses_the_run_environment():
    env = {"HOME": "/home/u", "DATA": "/d"}
    assert expand_vars("$HOME/x", env) == "/home/u/x"
    assert expand_vars("${DATA}-$MISSING-${NOPE}", env) == "/d-$MISSING-${NOPE}"


def test_world_size_and_the_distributed_section_are_checked_in_the_spec():
    """A launcher section given as a dict (a stored definition, a hand-made spec) is validated like a configuration."""
    from runyard.errors import ConfigError as Bad

    def spec(nodes, per, section):
        return JobSpec(source_directory="/src", entry_script="t.py", node_count=nodes, process_count_per_node=per,
                       distributed=section)

    ps = {"backend": "ps", "worker_count": 2, "parameter_server_count": 1, "chief": True}
    assert spec(2, 2, ps).world_size == 4
    with pytest.raises(Bad, match=r"3 TensorFlow tasks .* but node_count=2 × process_count_per_node=2"):
        spec(2, 2, {**ps, "chief": False})
    with pytest.raises(Bad, match="unknown distributed backend 'horovd'"):
        spec(1, 2, {"backend": "horovd"})
    with pytest.raises(Bad, match="communication_backend must be"):
        spec(1, 2, {"backend": "pytorch", "communication_backend": "tcp"})
    folded = spec(2, 2, ps).on_one_node()  # what a target that is one machine runs: the same processes, one node
    assert (folded.node_count, folded.process_count_per_node, folded.world_size) == (1, 4, 4)
    assert JobSpec.from_definition(folded.to_definition()) == folded
