"""Launchers are pure: a job and a node's place → the processes to start."""
import pytest

from runyard.config.job import JobSpec
from runyard.errors import ConfigError
from runyard.launchers import NodeContext, ProcessSpec, launcher_for


def job(**kw):
    return JobSpec(source_directory="/src", entry_script="train.py", arguments=("--lr", "0.1"),
                   environment={"python": {"interpreter_path": "/py/bin/python"}}, **kw)


def test_single_process_on_node_zero():
    launcher = launcher_for(job())
    assert launcher.name == "single"
    assert launcher.processes(job(), NodeContext()) == [
        ProcessSpec(rank=0, local_rank=0, argv=("/py/bin/python", "-u", "train.py", "--lr", "0.1"), env={"RUNYARD_RANK": "0", "AZ_BATCHAI_TASK_INDEX": "0"})
    ]
    assert launcher.processes(job(), NodeContext(node_rank=1, hosts=("a", "b"))) == []


def test_unknown_backend():
    with pytest.raises(ConfigError, match="unknown distributed backend 'smoke'"):
        launcher_for(job(distributed={"backend": "smoke"}, node_count=2))
