"""The runyard error tree: one root, shallow branches, messages that say what to do next."""
from __future__ import annotations


class RunyardError(Exception):
    """Root of every error runyard raises on purpose."""


class ConfigError(RunyardError):
    """A spec, name, value or configuration file is invalid."""


class ValidationError(ConfigError, ValueError):
    """A value passed to the API is invalid (bad name, bad metric value, unsafe artifact path)."""


class NotFound(RunyardError, LookupError):
    """A run, experiment or artifact does not exist."""


class StoreError(RunyardError):
    """The metadata or artifact store cannot be reached or refused an operation."""


class WorkspaceError(RunyardError):
    """The workspace folder cannot be created, read or written."""


class InvalidStatusTransition(RunyardError):
    """A run in a terminal status was asked to change status."""


class EnvironmentBuildError(RunyardError):
    """An environment could not be built (the resolver's or installer's message says why)."""


class ComputeError(RunyardError):
    """A compute target cannot run a job (no GPU, capacity, a supervisor that cannot start)."""


class ComputeTargetException(ComputeError):
    """Azure ML's compute error; what ``ComputeTarget(ws, name)`` raises for a missing target (Azure notebooks catch
    it to decide to create the target)."""


class DeploymentError(RunyardError):
    """A model service could not be deployed or did not come up (the message carries its log's last lines)."""


WebserviceException = DeploymentError  # Azure ML's name


class DataError(RunyardError):
    """A datastore or dataset cannot be read or written: unreachable, credentials refused, files changed or missing.

    Messages name the datastore (and its endpoint), never a secret."""


class RunFailed(RunyardError):
    """A run ended Failed (raised by waiting helpers when raise_on_error=True)."""


ActivityFailedException = RunFailed  # Azure ML's name (wait_for_completion(raise_on_error=True))


class RunyardWarning(UserWarning):
    """Something runyard did differently from what was asked, and says so (e.g. conda packages installed with pip)."""


def warn(message: str) -> None:
    """Issue a RunyardWarning attributed to the user's line: the first caller outside the runyard package."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, RunyardWarning, stacklevel=level)
