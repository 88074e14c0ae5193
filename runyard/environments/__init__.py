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
           EnvironmentPlan,
           env_root,
           is_ready,
           plan,
           relocate,
)

__all__ = ["BASE_IMAGE", "BuildCanceled", "CLIENT_REQUIREMENTS", "Engine", "engine", "image_id", "remove_containers", "CachedEnvironment", "EnvironmentPlan", "MARKER", "cached",
           "docker_argv", "docker_engine_error", "ensure", "env_root", "is_ready", "plan", "prune", "relocate"]
