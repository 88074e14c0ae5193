"""Distributed configurations and launchers, as pure functions: a job and a node → each process's command and env."""
from __future__ import annotations

import json

import pytest

from runyard.config.distributed import (
    Gloo,
    Mpi,
    MpiConfiguration,
    ParameterServer,
    PyTorchConfiguration,
    TensorflowConfiguration,
    resolve,
)
from runyard.config.job import JobSpec
from runyard.errors import ConfigError, ValidationError
from runyard.launchers import NodeContext, launcher_for


def job(node_count=1, per_node=1, distributed=None, **kw) -> JobSpec:
    return JobSpec(source_directory="/src", entry_script="train.py", arguments=("--lr", "0.1"),
                   environment={"python": {"interpreter_path": "/py/bin/python"}}, node_count=node_count,
                   process_count_per_node=per_node, distributed=distributed, **kw)


def test_configurations_and_shorthands_resolve_to_counts_and_a_launcher():
    assert resolve(MpiConfiguration(process_count_per_node=4)) == (1, 4, {"backend": "mpi"})
    assert resolve(Mpi(2)) == (1, 2, {"backend": "mpi"})
    assert resolve(TensorflowConfiguration(worker_count=2, parameter_server_count=1, chief=True)) == (
        1, 4, {"backend": "ps", "worker_count": 2, "parameter_server_count": 1, "chief": True})
    assert resolve(ParameterServer(worker_count=2)) == (
        1, 3, {"backend": "ps", "worker_count": 2, "parameter_server_count": 1, "chief": False})
    assert resolve(PyTorchConfiguration(communication_backend="Gloo", process_count=4)) == (
        1, 4, {"backend": "pytorch", "communication_backend": "gloo"})
    assert resolve(Gloo(process_count=2))[2]["communication_backend"] == "gloo"
    # The Estimator's older string form, with its counts
    assert resolve(distributed_backend="mpi", node_count=1, process_count_per_node=4) == (1, 4, {"backend": "mpi"})
    assert resolve(distributed_backend="ps", worker_count=2, parameter_server_count=1)[1] == 3
    assert resolve(distributed_backend="pytorch", process_count_per_node=2)[:2] == (1, 2)
    assert resolve() == (1, 1, None)
    with pytest.raises(ConfigError, match="unknown distributed_backend 'smoke'"):
        resolve(distributed_backend="smoke")
    with pytest.raises(ConfigError, match="not both"):
        resolve(Mpi(2), distributed_backend="mpi")
    with pytest.raises(ValidationError, match="process_count_per_node"):
        resolve(Mpi(0))
    with pytest.raises(ConfigError, match="communication_backend"):
        resolve(PyTorchConfiguration(communication_backend="tcp"))
    with pytest.raises(ConfigError, match="need distributed_backend='ps'"):
        resolve(worker_count=2)


def test_mpi_runs_every_rank_through_mpirun_on_node_zero():
    j = job(per_node=4, distributed={"backend": "mpi"})
    node = NodeContext(hosts=("127.0.0.1",), interpreter="/env/bin/python", env_names=("RUNYARD_RUN_ID", "A"),
                       as_root=True)
    [proc] = launcher_for(j).processes(j, node)
    argv = list(proc.argv)
    assert argv[:7] == ["mpirun", "--allow-run-as-root", "-np", "4", "-H", "127.0.0.1:4", "--bind-to"]
    assert ["--mca", "btl", "self,vader"] == argv[argv.index("--mca"):argv.index("--mca") + 3]
    assert "oob_tcp_if_include" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-x"] == ["A", "RUNYARD_RANK_LOG_DIR", "RUNYARD_RUN_ID"]
    assert argv[-7:] == ["/env/bin/python", "-u", "-m", "runyard.launchers.mpi_main", "train.py", "--lr", "0.1"]
    assert argv[-10:-8] == ["sh", "-c"]
    assert proc.rank_logs == (0, 1, 2, 3)
    assert "--allow-run-as-root" not in launcher_for(j).processes(j, NodeContext())[0].argv  # only as root
    two = job(node_count=2, per_node=2, distributed={"backend": "mpi"})
    argv = launcher_for(two).processes(two, NodeContext(hosts=("10.0.0.1", "10.0.0.2")))[0].argv
    assert "10.0.0.1:2,10.0.0.2:2" in argv and "self,vader,tcp" in argv and "oob_tcp_if_include" not in argv
    assert launcher_for(two).processes(two, NodeContext(node_rank=1, hosts=("10.0.0.1", "10.0.0.2"))) == []


def test_ps_gives_each_task_its_tf_config_and_a_role():
    j = job(per_node=4, distributed={"backend": "ps", "worker_count": 2, "parameter_server_count": 1, "chief": True})
    launcher = launcher_for(j)
    assert launcher.ports_needed(j) == 4
    procs = launcher.processes(j, NodeContext(ports=(5000, 5001, 5002, 5003)))
    configs = [json.loads(p.env["TF_CONFIG"]) for p in procs]
    assert configs[0]["cluster"] == {"chief": ["127.0.0.1:5000"], "worker": ["127.0.0.1:5001", "127.0.0.1:5002"],
                                     "ps": ["127.0.0.1:5003"]}
    assert [c["task"] for c in configs] == [{"type": "chief", "index": 0}, {"type": "worker", "index": 0},
                                            {"type": "worker", "index": 1}, {"type": "ps", "index": 0}]
    assert all(c["environment"] == "cloud" for c in configs)
    assert [p.role for p in procs] == ["main", "service", "service", "service"]  # the chief decides
    assert [p.env["RUNYARD_RANK"] for p in procs] == ["0", "1", "2", "3"]
    no_chief = job(per_node=3, distributed={"backend": "ps", "worker_count": 2, "parameter_server_count": 1})
    procs = launcher_for(no_chief).processes(no_chief, NodeContext(ports=(1, 2, 3)))
    assert [p.role for p in procs] == ["main", "main", "service"]  # workers decide; the ps serves


def test_ps_across_nodes_gives_every_task_its_own_nodes_address():
    j = job(node_count=2, per_node=2, distributed={"backend": "ps", "worker_count": 3, "parameter_server_count": 1})
    launcher = launcher_for(j)
    assert launcher.ports_needed(j) == 2  # each node reserves ports for its own tasks only
    peers = ((5000, 5001), (6000, 6001))
    hosts = ("10.0.0.1", "10.0.0.2")
    node0 = launcher.processes(j, NodeContext(node_rank=0, hosts=hosts, ports=peers[0], peer_ports=peers))
    node1 = launcher.processes(j, NodeContext(node_rank=1, hosts=hosts, ports=peers[1], peer_ports=peers))
    assert [p.rank for p in node0] == [0, 1] and [p.rank for p in node1] == [2, 3]
    configs = [json.loads(p.env["TF_CONFIG"]) for p in node0 + node1]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)  # one cluster spec, whoever computes it
    assert configs[0]["cluster"] == {"worker": ["10.0.0.1:5000", "10.0.0.1:5001", "10.0.0.2:6000"],
                                     "ps": ["10.0.0.2:6001"]}
    assert configs[3]["task"] == {"type": "ps", "index": 0}
    with pytest.raises(ValueError, match="not known"):  # several nodes need every node's ports
        launcher.processes(j, NodeContext(node_rank=1, hosts=hosts, ports=peers[1]))


def test_pytorch_sets_torchrun_variables_for_every_rank():
    j = job(node_count=2, per_node=2, distributed={"backend": "pytorch", "communication_backend": None})
    procs = launcher_for(j).processes(j, NodeContext(node_rank=1, hosts=("10.0.0.1", "10.0.0.2"), ports=(41000,),
                                                     peer_ports=((29500,), (41000,))))
    assert [p.rank for p in procs] == [2, 3] and [p.local_rank for p in procs] == [0, 1]
    env = procs[1].env
    assert {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                                "NODE_RANK", "RUNYARD_COMMUNICATION_BACKEND")} == {
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2", "NODE_RANK": "1", "RUNYARD_COMMUNICATION_BACKEND": "gloo"}
    gpu = job(per_node=1, distributed={"backend": "pytorch", "communication_backend": None}, use_gpu=True)
    [single] = launcher_for(gpu).processes(gpu, NodeContext(ports=(29500,)))
    assert single.env["RUNYARD_COMMUNICATION_BACKEND"] == "nccl" and single.env["WORLD_SIZE"] == "1"


def test_run_configurations_carry_the_distributed_section(tmp_path):
    from runyard import ScriptRunConfig
    from runyard.train.dnn import PyTorch, TensorFlow

    (tmp_path / "t.py").write_text("")
    spec = ScriptRunConfig(tmp_path, "t.py", distributed_job_config=PyTorchConfiguration(process_count=4)).to_job_spec()
    assert (spec.process_count_per_node, spec.distributed["backend"]) == (4, "pytorch")
    spec = TensorFlow(tmp_path, entry_script="t.py", node_count=1, process_count_per_node=4, distributed_backend="mpi",
                      user_managed=True).to_job_spec()
    assert (spec.process_count_per_node, spec.distributed) == (4, {"backend": "mpi"})
    spec = TensorFlow(tmp_path, entry_script="t.py", worker_count=2, parameter_server_count=1, distributed_backend="ps",
                      user_managed=True).to_job_spec()
    assert spec.process_count_per_node == 3 and spec.to_definition()["distributed"]["worker_count"] == 2
    spec = PyTorch(tmp_path, entry_script="t.py", distributed_training=Gloo(2), user_managed=True).to_job_spec()
    assert spec.process_count_per_node == 2


def test_estimator_counts_fill_a_configuration_left_at_its_defaults(tmp_path):
    from runyard.config.distributed import MpiConfiguration, PyTorchConfiguration
    from runyard.train.dnn import PyTorch

    (tmp_path / "t.py").write_text("")
    spec = PyTorch(str(tmp_path), entry_script="t.py", node_count=2, process_count_per_node=2,
                   distributed_training=PyTorchConfiguration()).to_job_spec()
    assert (spec.node_count, spec.process_count_per_node) == (2, 2)
    spec = PyTorch(str(tmp_path), entry_script="t.py", node_count=2,
                   distributed_training=MpiConfiguration(process_count_per_node=3)).to_job_spec()
    assert (spec.node_count, spec.process_count_per_node) == (2, 3)
    spec = PyTorch(str(tmp_path), entry_script="t.py",  # the configuration's own counts win over defaults
                   distributed_training=PyTorchConfiguration(process_count=4, node_count=2)).to_job_spec()
    assert (spec.node_count, spec.process_count_per_node) == (2, 2)
