"""The ``ps`` launcher: TensorFlow's parameter-server layout, one process per task with its own ``TF_CONFIG``.

Tasks are ranked chief (when asked for), workers, then ps; rank 0 (the chief, else worker 0) is the default log.
With a chief, the chief alone decides the result (TF2's ``ParameterServerStrategy``: workers and ps only serve);
without one, the workers do (TF1-style scripts) and the ps tasks are stopped once every worker has ended.
"""
from __future__ import annotations

import json

from runyard.config.job import JobSpec
from runyard.launchers.api import Launcher, NodeContext, ProcessSpec, rank_env, script_argv


def tasks(job: JobSpec) -> list[tuple[str, int]]:
    """(type, index) of every task, in rank order."""
    d = job.distributed or {}
    return ([("chief", 0)] if d.get("chief") else []) + [("worker", i) for i in range(d.get("worker_count", 1))] \
        + [("ps", i) for i in range(d.get("parameter_server_count", 1))]


class ParameterServerLauncher(Launcher):
    name = "ps"

    def ports_needed(self, job: JobSpec) -> int:
        return job.process_count_per_node  # one per task on each node

    def processes(self, job: JobSpec, node: NodeContext) -> list[ProcessSpec]:
        all_tasks = tasks(job)
        per_node = job.process_count_per_node
        addresses = [f"{node.hosts[rank // per_node]}:{node.ports_of(rank // per_node)[rank % per_node]}"
                     for rank in range(len(all_tasks))]
        cluster: dict[str, list[str]] = {}
        for (kind, _), address in zip(all_tasks, addresses):
            cluster.setdefault(kind, []).append(address)
        has_chief = "chief" in cluster
        out = []
        for rank in range(node.node_rank * per_node, (node.node_rank + 1) * per_node):
            kind, index = all_tasks[rank]
            config = {"cluster": cluster, "task": {"type": kind, "index": index}, "environment": "cloud"}
            main = kind == "chief" or (kind == "worker" and not has_chief)
            out.append(ProcessSpec(rank=rank, local_rank=rank - node.node_rank * per_node, argv=script_argv(job, node),
                                   env={"TF_CONFIG": json.dumps(config), **rank_env(rank)},
                                   role="main" if main else "service"))
        return out
