"""Environments: which Python a run uses and the variables it sees.

This release runs jobs in an existing interpreter (user-managed dependencies, as Azure ML's
``python.user_managed_dependencies = True``); building isolated environments from package lists is the next step.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

from runyard import validation
from runyard.errors import ConfigError, ValidationError


@dataclass
class PythonSection:
    """``env.python``: the interpreter a run uses (``None``: the interpreter that submits the run)."""

    interpreter_path: str | None = None
    user_managed_dependencies: bool = True


@dataclass
class Environment:
    """A named environment: the Python interpreter and the environment variables of a run.

    Example::

        env = Environment.from_existing_interpreter("current")      # or a path, e.g. "/opt/venv/bin/python"
        env.environment_variables = {"OMP_NUM_THREADS": "2"}
    """

    name: str = "default"
    version: str | None = None
    python: PythonSection = field(default_factory=PythonSection)
    environment_variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_existing_interpreter(cls, interpreter: str = "current", name: str | None = None) -> "Environment":
        """Run in an interpreter that already has what the script needs: ``"current"`` or a path/command name."""
        path = sys.executable if interpreter == "current" else interpreter
        env = cls(name or ("current" if interpreter == "current" else os.path.basename(interpreter)))
        env.python = PythonSection(interpreter_path=path, user_managed_dependencies=True)
        return env

    def to_spec(self) -> dict[str, Any]:
        """The validated, JSON-ready form stored in a job spec (the interpreter resolved to an absolute path)."""
        name = validation.key(self.name, "environment name")
        if not isinstance(self.environment_variables, dict):
            raise ValidationError(f"environment {name!r}: environment_variables must be a dict of str → str")
        variables = {}
        for key, value in self.environment_variables.items():
            if not isinstance(key, str) or not key or "=" in key or "\0" in key:
                raise ValidationError(f"environment {name!r}: invalid environment variable name {key!r}")
            if not isinstance(value, (str, int, float, bool)):
                raise ValidationError(f"environment {name!r}: variable {key} must be a string or number, got {type(value).__name__}")
            variables[key] = str(value)
        return {
            "name": name,
            "version": self.version,
            "python": {"interpreter_path": _interpreter(self.python.interpreter_path, name),
                       "user_managed_dependencies": bool(self.python.user_managed_dependencies)},
            "environment_variables": variables,
        }


def _interpreter(path: str | None, env_name: str) -> str:
    if path is None:
        return sys.executable
    found = path if os.sep in path else shutil.which(path)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise ConfigError(
            f"environment {env_name!r}: Python interpreter {path!r} not found or not executable — give the full path "
            "of an existing interpreter, or Environment.from_existing_interpreter('current')"
        )
    return os.path.abspath(found)
