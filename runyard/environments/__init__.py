"""Environments: an Environment spec → its key (``planning.py``) → a built, cached environment (``builder.py``: uv,
conda, inside a container image when asked — ``docker.py``), and the cache of built ones (``cache.py``)."""
from runyard.environments.builder import BuildCanceled, ensure
from runyard.environments.cache import CachedEnvironment, cached, prune
from runyard.environments.docker import docker_argv, docker_engine_error
from runyard.environments.planning import (
           CLIENT_REQUIREMENTS,
           MARKER,
           EnvironmentPlan,
           env_root,
           is_ready,
           plan,
           relocate,
)

__all__ = ["BuildCanceled", "CLIENT_REQUIREMENTS", "CachedEnvironment", "EnvironmentPlan", "MARKER", "cached",
           "docker_argv", "docker_engine_error", "ensure", "env_root", "is_ready", "plan", "prune", "relocate"]
