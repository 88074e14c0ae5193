"""Run ids: ``<experiment>_<unix seconds>_<8 hex>``, as in Azure ML; safe in paths, URLs and MLflow."""
from __future__ import annotations

import re
import secrets
import time

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def new_run_id(experiment_name: str) -> str:
    prefix = _UNSAFE.sub("_", experiment_name)[:64].strip("_") or "run"
    return f"{prefix}_{int(time.time())}_{secrets.token_hex(4)}"
