"""The ``pytorch`` launcher: one process per local rank with exactly the variables torchrun sets.

MASTER_ADDR/MASTER_PORT (node 0's address and a port free there), RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
NODE_RANK, GROUP_RANK, ROLE_RANK, ROLE_WORLD_SIZE — also for a single process, since scripts read them
unconditionally — and RUNYARD_COMMUNICATION_BACKEND (gloo on CPU, nccl with use_gpu, unless configured).
"""
from __future__ import annotations

from runyard import env_vars
from runyard.config.job import JobSpec
from runyard.launchers.api import Launcher, NodeContext, ProcessSpec, rank_env, script_argv

BACKEND_VAR = "RUNYARD_COMMUNICATION_BACKEND"


class PyTorchLauncher(Launcher):
    name = "pytorch"

    def ports_needed(self, job: JobSpec) -> int:
        return 1  # the rendezvous port on node 0

    def processes(self, job: JobSpec, node: NodeContext) -> list[ProcessSpec]:
        per_node = job.process_count_per_node
        world = job.world_size
        backend = (job.distributed or {}).get("communication_backend") or ("nccl" if job.use_gpu else "gloo")
        host, port = node.hosts[0], node.ports_of(0)[0]
        master = f"{host}:{port}"
        common = {"MASTER_ADDR": host, "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                  "LOCAL_WORLD_SIZE": str(per_node), "NODE_RANK": str(node.node_rank),
                  "GROUP_RANK": str(node.node_rank), "ROLE_WORLD_SIZE": str(world), BACKEND_VAR: backend,
                  env_vars.AZURE_PYTORCH_INIT_METHOD: f"tcp://{master}", env_vars.AZURE_MASTER_NODE: master}
        out = []
        for local_rank in range(per_node):
            rank = node.node_rank * per_node + local_rank
            env = {**common, "RANK": str(rank), "LOCAL_RANK": str(local_rank), "ROLE_RANK": str(rank),
                   **rank_env(rank)}
            out.append(ProcessSpec(rank=rank, local_rank=local_rank, argv=script_argv(job, node), env=env))
        return out
