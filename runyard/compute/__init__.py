"""Compute targets: where runs execute, one interface (``api.py``) and a target per backend, found by name
(``registry.py``: built-in targets, those registered in the workspace, and the ``runyard.compute_targets``
entry-point group)."""
from __future__ import annotations

from runyard.compute import registry
from runyard.compute.amlcompute import AmlCompute, AmlComputePool, DsvmCompute, RemoteCompute
from runyard.compute.api import ComputeStatus, ComputeTarget, RunDescription, RunRef, SubmitRequest, TargetOption
from runyard.compute.ray_config import RayCompute, RayComputeConfiguration
from runyard.compute.registry import ComputeTargetException, ComputeTargetNotFound, get_target, known_targets

__all__ = ["AmlCompute", "AmlComputePool", "ComputeTarget", "ComputeStatus", "ComputeTargetException",
           "ComputeTargetNotFound", "DsvmCompute", "RemoteCompute", "RayCompute", "RayComputeConfiguration",
           "RunDescription", "RunRef", "SubmitRequest", "TargetOption", "get_target", "known_targets", "registry"]
