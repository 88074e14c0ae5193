"""Run statuses (DESIGN.md §4)."""
from __future__ import annotations

from enum import Enum

from runyard.errors import ValidationError


class RunStatus(str, Enum):
    """The life cycle of a run. Terminal statuses never change."""

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    STARTING = "Starting"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"

    def is_terminal(self) -> bool:
        return self in _TERMINAL

    def __str__(self) -> str:  # "Completed", not "RunStatus.COMPLETED"
        return self.value

    @classmethod
    def parse(cls, value: "str | RunStatus") -> "RunStatus":
        if isinstance(value, RunStatus):
            return value
        for status in cls:
            if value in (status.value, status.name) or value.lower() == status.value.lower():
                return status
        names = ", ".join(s.value for s in cls)
        raise ValidationError(f"unknown run status {value!r}; expected one of {names}")


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
