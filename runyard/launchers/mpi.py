"""The ``mpi`` launcher: Open MPI's ``mpirun`` on node 0 starts every rank (Horovod, mpi4py).

Ranks see ``OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK`` from mpirun, and ``RUNYARD_RANK``. Each rank's output goes to
its own log: a small ``sh`` wrapper points the rank's stdout/stderr at ``$RUNYARD_RANK_LOG_DIR/<rank>`` (a FIFO the
supervisor reads), so logs stay per rank instead of interleaving inside mpirun's output.
"""
from __future__ import annotations

import shutil

from runyard import env_vars
from runyard.config.job import JobSpec
from runyard.errors import ConfigError
from runyard.launchers.api import Launcher, NodeContext, ProcessSpec, rank_env, script_argv

RANK_LOG_DIR = "RUNYARD_RANK_LOG_DIR"
# Each rank: rank_env's variables from Open MPI's rank, output into its FIFO, then exec the script (no extra process).
_WRAPPER = (f'export {env_vars.RANK}="$OMPI_COMM_WORLD_RANK" {env_vars.AZURE_TASK_INDEX}="$OMPI_COMM_WORLD_RANK"; '
            f'exec "$0" "$@" >"${RANK_LOG_DIR}/$OMPI_COMM_WORLD_RANK" 2>&1')
_LOOPBACK = ("127.", "localhost", "::1")


class MpiLauncher(Launcher):
    name = "mpi"

    def check(self, job: JobSpec) -> None:
        if shutil.which("mpirun") is None:
            raise ConfigError(
                "the mpi backend needs Open MPI's mpirun, which is not on PATH — install it (Debian/Ubuntu: "
                "apt-get install openmpi-bin libopenmpi-dev; conda: conda install -c conda-forge openmpi)"
            )

    def processes(self, job: JobSpec, node: NodeContext) -> list[ProcessSpec]:
        if node.node_rank != 0:
            return []  # mpirun on node 0 starts the ranks of every node through Open MPI's daemons
        per_node = job.process_count_per_node
        world = job.world_size
        hosts = node.hosts[: job.node_count]
        local_only = all(h.startswith(_LOOPBACK) for h in hosts)
        argv = ["mpirun", *(["--allow-run-as-root"] if node.as_root else []),
                "-np", str(world), "-H", ",".join(f"{h}:{per_node}" for h in hosts),
                "--bind-to", "none",  # a training script sets its own threads; binding ranks to cores starves them
                "--mca", "btl", "self,vader" if local_only else "self,vader,tcp"]
        if local_only:
            argv += ["--mca", "oob_tcp_if_include", "lo"]
        for name in sorted({*node.env_names, *job.environment_variables, RANK_LOG_DIR}):
            argv += ["-x", name]
        interpreter, unbuffered, *script = script_argv(job, node)
        # The script runs under runyard's rank wrapper: an uncaught exception aborts every rank (no hang in
        # MPI_Finalize while the others wait in a collective).
        argv += ["sh", "-c", _WRAPPER, interpreter, unbuffered, "-m", "runyard.launchers.mpi_main", *script]
        return [ProcessSpec(rank=0, local_rank=0, argv=tuple(argv), env=rank_env(0),
                            rank_logs=tuple(range(world)))]
