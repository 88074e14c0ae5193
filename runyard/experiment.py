"""Experiments: named groups of runs."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import validation
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.run import Run
    from runyard.store.metadata import ExperimentInfo
    from runyard.workspace import Workspace


class Experiment:
    """``Experiment(ws, "name")`` gets the experiment, creating it on first use.

    Names are letters, digits, '_', '-' and '.', up to 255 characters.
    """

    def __init__(self, workspace: "Workspace", name: str, **_: Any) -> None:
        self.workspace = workspace
        self.name = validation.experiment_name(name)
        self._info = workspace.metadata.get_or_create_experiment(name)
        self.id = self._info.id

    @classmethod
    def _from_info(cls, workspace: "Workspace", info: "ExperimentInfo") -> "Experiment":
        exp = cls.__new__(cls)
        exp.workspace, exp.name, exp._info, exp.id = workspace, info.name, info, info.id
        return exp

    @staticmethod
    def list(workspace: "Workspace") -> list["Experiment"]:
        return list(workspace.experiments.values())

    def start_logging(
        self, *args: Any, display_name: str | None = None, outputs: str | bool | None = None, **kwargs: Any
    ) -> "Run":
        """Start an interactive run (status Running) for logging from this process.

        Args:
            display_name: a friendly name shown in listings.
            outputs: a folder uploaded as the run's ``outputs/`` when the run completes; default ``./outputs``,
                ``False`` for none.

        The run is completed when you call ``complete()`` or leave its ``with`` block; if you do neither, it is
        marked Completed (or Failed, on an uncaught exception) when the process exits.
        """
        from runyard.context import owned
        from runyard.run import Run

        info = self.workspace.metadata.create_run(
            self.id,
            display_name=validation.key(display_name, "display name") if display_name else None,
            run_type="interactive",
            status=RunStatus.RUNNING,
        )
        tracked = None if outputs is False else str(Path(outputs if isinstance(outputs, str) else "outputs").absolute())
        run = Run(self, info.run_id, outputs=tracked, _info=info)
        owned.own(run)
        return run

    def submit(self, config: Any, tags: Mapping[str, Any] | None = None, display_name: str | None = None) -> "Run":
        """Submit a ``ScriptRunConfig`` or an ``Estimator``; returns the run at once (status Queued).

        The code in ``source_directory`` is snapshotted, the run is recorded, and the compute target starts it
        (locally: in a detached supervisor process, so the run goes on if this process exits). Everything is
        validated first: a bad spec raises before anything is stored or started.

        Args:
            tags: tags set on the run.
            display_name: a friendly name for the run.
        """
        from runyard.submission import submit

        return submit(self, config, tags=tags, display_name=display_name)

    @property
    def tags(self) -> dict[str, str]:
        """The experiment's tags (read fresh from the store)."""
        return dict(self.workspace.metadata.get_experiment(self.id).tags)

    def tag(self, key: str, value: str | None = None) -> None:
        """Tag the experiment; ``value`` may be omitted (the tag is then present with an empty value)."""
        self.workspace.metadata.set_experiment_tags(
            self.id, {validation.key(key, "tag key"): validation.text(value, f"tag {key!r}")}
        )

    def remove_tags(self, tags: list[str]) -> None:
        self.workspace.metadata.set_experiment_tags(self.id, {key: None for key in tags})

    def get_runs(
        self,
        type: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        include_children: bool = False,
        status: str | None = None,
    ) -> Iterator["Run"]:
        """Runs of this experiment, newest first."""
        from runyard.run import Run

        return Run.list(self, type=type, tags=tags, properties=properties, status=status, include_children=include_children)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.id == self.id and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash((self.id, self.name))
