"""Environment variables runyard reads and sets (the contract between a submitted process and its run).

A process started by runyard (a run's supervisor starts each process with them) gets these; ``Run.get_context()`` reads them.
Setting them by hand also works, e.g. to log from a process you started yourself into an existing run.

| variable | meaning |
|---|---|
| ``RUNYARD_HOME`` | workspace folder used when no ``.runyard/config.json`` is found upward (default ``~/.runyard``) |
| ``RUNYARD_RUN_ID`` | id of the run this process belongs to; ``Run.get_context()`` returns that run |
| ``RUNYARD_EXPERIMENT_NAME`` | name of that run's experiment (informational) |
| ``RUNYARD_TRACKING_URI`` | metadata store URL (``sqlite:///…``, ``postgresql+psycopg://…``) or ``runyard:///WORKSPACE`` |
| ``RUNYARD_ARTIFACT_URI`` | artifact store root (a folder or an fsspec URL) |
| ``RUNYARD_WORKSPACE`` | workspace folder of the run (holds ``config.json``); used when the two URIs are not set |
| ``RUNYARD_PARENT_RUN_ID`` | parent run id, for child runs (informational) |
| ``RUNYARD_RANK`` | rank of this process in a distributed run; metrics from rank ≠ 0 still land in the same run |
| ``RUNYARD_NODE_RANK``, ``RUNYARD_NODE_ID`` | (Ray target) the node of the job this process runs on, and that node's Ray node id |
| ``RUNYARD_RANK_METRICS`` | how ranks ≠ 0 log: ``tag`` (default: ``loss`` becomes ``loss/rank1``), ``merge`` (one name for all ranks), ``rank0`` (only rank 0's values are kept) |
| ``RUNYARD_LOG_BATCH_SIZE`` | most metric values written in one transaction (default 20000) |
| ``RUNYARD_LOG_FLUSH_INTERVAL`` | seconds between background writes (default 0.5) |
| ``RUNYARD_LOG_MAX_BACKLOG`` | values kept in memory while the store is unreachable; more go to a spool file (1000000) |
| ``RUNYARD_HEARTBEAT_INTERVAL`` | seconds between heartbeats of the runs a process drives (default 10) |
| ``RUNYARD_HEARTBEAT_TIMEOUT`` | seconds without a heartbeat after which the next reader marks the run Failed (default 60) |
| ``RUNYARD_STORE_PATIENCE`` | seconds a store call waits (with backoff) for a database that refuses connections: too many clients, restarting, down (default 300 in a run's processes and supervisors, 5 elsewhere) |
| ``RUNYARD_DB_IDLE_SECONDS`` | (PostgreSQL) a process's one connection is closed after this many idle seconds (default 5) |

Compatibility aliases, set for every process of a run alongside runyard's own, for scripts written for Azure ML
(they read them, or pass them as literal ``$VAR`` arguments, which runyard expands per process):

| variable | meaning |
|---|---|
| ``AZUREML_RUN_ID`` | = ``RUNYARD_RUN_ID`` |
| ``AZUREML_EXPERIMENT_NAME`` | = ``RUNYARD_EXPERIMENT_NAME`` |
| ``AZ_BATCHAI_TASK_INDEX`` | = ``RUNYARD_RANK``: the index of this process among the job's processes |
| ``AZ_BATCHAI_PYTORCH_INIT_METHOD`` | (PyTorch jobs) ``tcp://MASTER_ADDR:MASTER_PORT``, for ``init_process_group(init_method=…)`` |
| ``AZ_BATCH_MASTER_NODE`` | (PyTorch jobs) ``MASTER_ADDR:MASTER_PORT`` |
| ``AZUREML_MODEL_DIR`` | (deployed services) = ``RUNYARD_MODEL_DIR``, the models' folder |

Settings of the ``local`` compute target (also ``compute.local.<name>`` in the workspace's ``config.json``):

| variable | meaning |
|---|---|
| ``RUNYARD_LOCAL_MAX_RUNS`` | CPU runs executing at once; more wait in Queued (default: the number of CPUs) |
| ``RUNYARD_LOCAL_MAX_GPU_RUNS`` | runs with ``use_gpu=True`` executing at once (default: one per GPU) |
| ``RUNYARD_LOG_MAX_MB`` | size of a captured log file before it is rotated; two older parts are kept (100) |
| ``RUNYARD_KILL_GRACE`` | seconds between SIGTERM and SIGKILL when a run is canceled or times out (3) |
| ``RUNYARD_LOG_SYNC_SECONDS`` | seconds between uploads of a running run's logs (10) |
| ``RUNYARD_SUPERVISOR_START`` | ``auto`` (fork from a single-threaded submitter) or ``spawn`` (a fresh interpreter) |
| ``RUNYARD_SNAPSHOT_WARN_MB``, ``RUNYARD_SNAPSHOT_WARN_FILES`` | soft size limits of a snapshot (300 MB, 2000 files) |
| ``RUNYARD_REQUIRE_GPU`` | ``1``: refuse a ``use_gpu=True`` run on a machine without GPUs (default: it runs on the CPU, with a warning) |

Environments (built with uv, cached by the hash of their spec):

| variable | meaning |
|---|---|
| ``RUNYARD_ENV_DIR`` | where built environments are cached (default: the workspace's ``envs/`` folder) |
| ``RUNYARD_ENV_BUILD_TIMEOUT`` | seconds an environment build may take before it is stopped and the run fails (1800) |
| ``RUNYARD_HOROVOD_CACHE`` | where Horovod wheels compiled for an environment's frameworks are kept for the next environment with the same ones (default ``~/.cache/runyard/horovod``) |
| ``RUNYARD_ENV_INDEX_CHECK`` | ``0``: do not ask the package indexes whether a framework version exists before building |
| ``RUNYARD_VISIBLE_GPUS`` | (set by runyard) the GPUs a run was given, also exported as ``CUDA_VISIBLE_DEVICES`` |
"""
from __future__ import annotations

HOME = "RUNYARD_HOME"
RUN_ID = "RUNYARD_RUN_ID"
EXPERIMENT_NAME = "RUNYARD_EXPERIMENT_NAME"
TRACKING_URI = "RUNYARD_TRACKING_URI"
ARTIFACT_URI = "RUNYARD_ARTIFACT_URI"
WORKSPACE = "RUNYARD_WORKSPACE"
PARENT_RUN_ID = "RUNYARD_PARENT_RUN_ID"
RANK = "RUNYARD_RANK"
LOG_BATCH_SIZE = "RUNYARD_LOG_BATCH_SIZE"
LOG_FLUSH_INTERVAL = "RUNYARD_LOG_FLUSH_INTERVAL"
HEARTBEAT_INTERVAL = "RUNYARD_HEARTBEAT_INTERVAL"
STORE_PATIENCE = "RUNYARD_STORE_PATIENCE"
DB_IDLE_SECONDS = "RUNYARD_DB_IDLE_SECONDS"
HEARTBEAT_TIMEOUT = "RUNYARD_HEARTBEAT_TIMEOUT"
LOG_MAX_BACKLOG = "RUNYARD_LOG_MAX_BACKLOG"
LOCAL_MAX_RUNS = "RUNYARD_LOCAL_MAX_RUNS"
LOCAL_MAX_GPU_RUNS = "RUNYARD_LOCAL_MAX_GPU_RUNS"
LOG_MAX_MB = "RUNYARD_LOG_MAX_MB"
KILL_GRACE = "RUNYARD_KILL_GRACE"
LOG_SYNC_SECONDS = "RUNYARD_LOG_SYNC_SECONDS"
SUPERVISOR_START = "RUNYARD_SUPERVISOR_START"
SNAPSHOT_WARN_MB = "RUNYARD_SNAPSHOT_WARN_MB"
SNAPSHOT_WARN_FILES = "RUNYARD_SNAPSHOT_WARN_FILES"
REQUIRE_GPU = "RUNYARD_REQUIRE_GPU"
ENV_DIR = "RUNYARD_ENV_DIR"
ENV_BUILD_TIMEOUT = "RUNYARD_ENV_BUILD_TIMEOUT"
HOROVOD_CACHE = "RUNYARD_HOROVOD_CACHE"
ENV_INDEX_CHECK = "RUNYARD_ENV_INDEX_CHECK"
VISIBLE_GPUS = "RUNYARD_VISIBLE_GPUS"
RANK_METRICS = "RUNYARD_RANK_METRICS"
NODE_RANK = "RUNYARD_NODE_RANK"
NODE_ID = "RUNYARD_NODE_ID"
# Azure ML's names, set alongside runyard's own (compatibility aliases)
AZURE_RUN_ID = "AZUREML_RUN_ID"
AZURE_EXPERIMENT_NAME = "AZUREML_EXPERIMENT_NAME"
AZURE_TASK_INDEX = "AZ_BATCHAI_TASK_INDEX"
AZURE_PYTORCH_INIT_METHOD = "AZ_BATCHAI_PYTORCH_INIT_METHOD"
AZURE_MASTER_NODE = "AZ_BATCH_MASTER_NODE"
