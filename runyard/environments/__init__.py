"""Environments: an Environment spec → its key → a built, cached environment (uv, conda, a container image)."""
from runyard.environments.builder import (
    CLIENT_REQUIREMENTS,
    MARKER,
    BuildCanceled,
    CachedEnvironment,
    EnvironmentPlan,
    cached,
    docker_argv,
    docker_engine_error,
    ensure,
    env_root,
    is_ready,
    plan,
    prune,
    relocate,
)

__all__ = ["BuildCanceled", "CLIENT_REQUIREMENTS", "CachedEnvironment", "EnvironmentPlan", "MARKER", "cached",
           "docker_argv", "docker_engine_error", "ensure", "env_root", "is_ready", "plan", "prune", "relocate"]
