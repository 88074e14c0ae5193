"""Environments: an Environment spec → its key (``planning.py``) → a built, cached environment (``builder.py``: uv,
conda, inside a container image when asked — ``docker.py``), and the cache of built ones (``cache.py``)."""
from runyard.environments.builder import BuildCanceled, ensure
from runyard.environments.cache import CachedEnvironment, cached, prune
from runyard.environments.docker import (
    BASE_IMAGE,
    Engine,
    docker_argv,
    docker_engine_error,
    engine,
    image_id,
    remove_containers,
)
from runyard.environments.planning import (
           CLIENT_REQUIREMENTS,
           MARKER,
           RUNYARD_PACKAGE,
           EnvironmentPlan,
           env_root,
           is_ready,
           plan,
           relocate,
)

__all__ = [
    "BASE_IMAGE", "BuildCanceled", "cached", "CachedEnvironment", "CLIENT_REQUIREMENTS", "docker_argv",
    "docker_engine_error", "Engine", "engine", "ensure", "env_root", "EnvironmentPlan", "image_id", "is_ready",
    "MARKER", "plan", "prune", "relocate", "remove_containers", "RUNYARD_PACKAGE",
]
