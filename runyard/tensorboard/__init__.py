"""Azure ML's ``azureml.tensorboard``: TensorBoard over runs' ``logs/`` from a notebook.

    from runyard.tensorboard import Tensorboard        # from azureml.tensorboard import Tensorboard
    tb = Tensorboard([run], port=6006)
    url = tb.start(start_browser=False)                # http://127.0.0.1:6006/
    ...
    tb.stop()

Each run's event files (what its script wrote under ``./logs``) are copied into ``local_root/<run name>/`` (default:
the workspace's ``tensorboard/`` folder) and served by TensorBoard on 127.0.0.1 behind the studio's Host/Origin
rules; while a run is still going, its newer files are copied in every few seconds (TensorBoard reloads them).
``runyard.tensorboard.export.export_to_tensorboard`` writes a run's metrics as event files.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError

REFRESH_SECONDS = 5.0  # how often a running run's newer event files are copied in


class Tensorboard:
    """TensorBoard over ``runs`` (Run objects of one workspace)."""

    def __init__(self, runs: list[Any], local_root: str | None = None, port: int = 6006) -> None:
        runs = list(runs) if isinstance(runs, (list, tuple)) else [runs]
        if not runs or not all(hasattr(r, "id") and hasattr(r, "_ws") for r in runs):
            raise ConfigError("Tensorboard needs a list of runs, e.g. Tensorboard([run])")
        if len({str(r._ws.path) for r in runs}) > 1:
            raise ConfigError("Tensorboard's runs must belong to one workspace")
        self.runs, self.local_root, self.port = runs, local_root, port
        self._info: dict[str, Any] | None = None
        self._done = threading.Event()
        self._refresher: threading.Thread | None = None

    @property
    def _ws(self):
        return self.runs[0]._ws

    def _base(self) -> Path | None:
        return Path(self.local_root).expanduser().absolute() if self.local_root else None

    def start(self, start_browser: bool = False) -> str:
        """Start TensorBoard (or reuse the one already serving these runs); returns its URL."""
        from runyard.ui import tensorboard as tb

        self._info = tb.start(self._ws, [r.id for r in self.runs], port=self.port, base=self._base())
        self._done.clear()
        if self._refresher is None or not self._refresher.is_alive():
            self._refresher = threading.Thread(target=self._refresh, name="runyard-tensorboard", daemon=True)
            self._refresher.start()
        url = self._info["url"]
        print(url)
        if start_browser:
            import webbrowser

            webbrowser.open(url)
        return url

    def _refresh(self) -> None:
        """Copy in the running runs' newer event files until they end (then once more) or ``stop``."""
        from runyard.ui import tensorboard as tb

        while not self._done.wait(REFRESH_SECONDS):
            live = [r for r in self.runs if r._refresh().status.value not in ("Completed", "Failed", "Canceled")]
            tb.collect(self._ws, [r.id for r in self.runs], Path(self._info["logdir"]))
            if not live:
                return

    def stop(self) -> None:
        """Stop the TensorBoard this object started."""
        from runyard.ui import tensorboard as tb

        self._done.set()
        if self._info is not None:
            tb.stop(self._ws, [r.id for r in self.runs], base=self._base())
            self._info = None


__all__ = ["Tensorboard"]
