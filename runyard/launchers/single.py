"""The plain launcher: one process running the entry script (a job with no distributed backend)."""
from __future__ import annotations

from runyard.config.job import JobSpec
from runyard.launchers.api import Launcher, NodeContext, ProcessSpec, rank_env, script_argv


class SingleProcessLauncher(Launcher):
    name = "single"

    def processes(self, job: JobSpec, node: NodeContext) -> list[ProcessSpec]:
        if node.node_rank != 0:
            return []
        return [ProcessSpec(rank=0, local_rank=0, argv=script_argv(job, node), env=rank_env(0))]
