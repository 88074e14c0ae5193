"""``RunDetails(run).show()``: a live summary of a run in Jupyter (ipywidgets), or as text anywhere else.

The summary: status and duration, the latest value of each metric, child runs by status, the error's message. In
Jupyter with ipywidgets it refreshes every few seconds until the run ends; without them it prints once.
"""
from __future__ import annotations

import html
import threading
import time
from typing import Any

_TERMINAL = {"Completed", "Failed", "Canceled"}


class RunDetails:
    def __init__(self, run_instance: Any, refresh_seconds: float = 3.0) -> None:
        self.run = run_instance
        self.refresh_seconds = refresh_seconds

    def _summary(self) -> dict[str, Any]:
        run = self.run
        details = run.get_details()
        metrics = {}
        for k, v in run.get_metrics().items():  # a series shows its latest value
            v = v[-1] if isinstance(v, list) and v else v
            if isinstance(v, (int, float, str)):
                metrics[k] = v
        children: dict[str, int] = {}
        for child in run.get_children():
            children[child.get_status()] = children.get(child.get_status(), 0) + 1
        return {"id": run.id, "name": getattr(run, "display_name", run.id), "status": details["status"],
                "duration": details.get("durationSeconds"), "target": details.get("target"), "metrics": metrics,
                "children": children, "error": (details.get("error") or {}).get("message")}

    def text(self) -> str:
        s = self._summary()
        lines = [f"Run {s['name']} ({s['id']}): {s['status']}"
                 + (f" after {s['duration']:.1f} s" if s["duration"] else "") + (f" on {s['target']}" if s["target"] else "")]
        width = max((len(k) for k in s["metrics"]), default=0)
        lines += [f"  {k:<{width}}  {v}" for k, v in sorted(s["metrics"].items())]
        if s["children"]:
            lines.append("  children: " + ", ".join(f"{n} {st}" for st, n in sorted(s["children"].items())))
        if s["error"]:
            lines.append(f"  error: {s['error']}")
        return "\n".join(lines)

    def _html(self) -> str:
        s = self._summary()
        rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in sorted(s["metrics"].items()))
        error = f"<p style='color:#a11'>{html.escape(s['error'])}</p>" if s["error"] else ""
        children = ("<p>children: " + html.escape(", ".join(f"{n} {st}" for st, n in sorted(s["children"].items())))
                    + "</p>") if s["children"] else ""
        return (f"<b>{html.escape(s['name'])}</b> <code>{html.escape(s['id'])}</code>: <b>{html.escape(s['status'])}</b>"
                f"<table>{rows}</table>{children}{error}")

    def show(self) -> None:
        try:
            import ipywidgets
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            print(self.text())
            return
        if get_ipython() is None or "IPKernelApp" not in getattr(get_ipython(), "config", {}):
            print(self.text())
            return
        widget = ipywidgets.HTML(self._html())
        display(widget)

        def refresh() -> None:
            while True:
                time.sleep(self.refresh_seconds)
                widget.value = self._html()
                if self.run.get_status() in _TERMINAL:
                    return

        if self.run.get_status() not in _TERMINAL:
            threading.Thread(target=refresh, name="runyard-run-details", daemon=True).start()


__all__ = ["RunDetails"]
