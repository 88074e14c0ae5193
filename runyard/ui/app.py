"""The web studio: a JSON API over the workspace's stores and one static page that draws it (no Node at run time).

    runyard ui [--host 127.0.0.1] [--port 5600] [--token T] [--allow-host NAME]

Everything is read through the store APIs. Who may ask (runyard.webguard): the ``Host`` header must name this
server (DNS rebinding), and a request that changes something (cancel, TensorBoard) must come from the studio's own
page (same origin, the page's header). With a token — always when the studio is served beyond loopback (one is
generated and printed when none is given, as Jupyter does) — every API request needs it: ``Authorization: Bearer
T``, or the cookie that opening ``/?token=T`` sets. The page builds every element from text (``textContent``), so run names, tags, metric names and log lines are never
taken as HTML.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import secrets as _secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from runyard import webguard
from runyard.config.job import JobSpec
from runyard.errors import ConfigError, NotFound, RunyardError, ValidationError
from runyard.hyperdrive.config import PRIMARY_METRIC, STOPPED_BY_TAG, primary_metric
from runyard.hyperdrive.config import RUN_TYPE as SWEEP_RUN_TYPE

if TYPE_CHECKING:
    from runyard.workspace import Workspace

STATIC = Path(__file__).parent / "static"
_TERMINAL = {"Completed", "Failed", "Canceled"}
MAX_POINTS = 1000  # a series longer than this is reduced (min and max of each step range) in the database
LIVE_SECONDS = 1.0  # how often a live run page's stream looks for new metric values
SWEEP_POINTS = 200  # points per trial on a sweep's chart


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def content_disposition(kind: str, name: str) -> str:
    """RFC 6266: a plain ASCII ``filename`` for old clients (quotes, backslashes, control and non-ASCII characters
    replaced) and the exact name as RFC 5987 ``filename*=UTF-8''…``."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class ChartLibrary:
    """plotly.js as the installed ``plotly`` Python package ships it (``plotly/package_data/plotly.min.js``)."""

    _gzipped: dict[Path, bytes] = {}

    def __init__(self, path: Path, version: str) -> None:
        self.path, self.version = path, version
        self.url = f"/vendor/plotly-{version}.min.js"

    @classmethod
    def find(cls) -> "ChartLibrary":
        from importlib import metadata, util

        spec = util.find_spec("plotly")  # where it is, without importing it
        path = Path(next(iter(spec.submodule_search_locations or ()), "")) / "package_data" / "plotly.min.js" \
            if spec else None
        if path is None or not path.is_file():
            raise ConfigError("the studio draws its charts with plotly.js from the plotly package, which is not "
                              "installed here: pip install 'runyard[ui]' (or plotly)")
        return cls(path, metadata.version("plotly"))

    def gzipped(self) -> bytes:
        if self.path not in self._gzipped:  # once per process: ~4.8 MB → ~1.4 MB
            import gzip

            self._gzipped[self.path] = gzip.compress(self.path.read_bytes(), 6)
        return self._gzipped[self.path]


TOKEN_COOKIE = "runyard_token"


class Guard:
    """ASGI middleware in front of the studio: Host and origin rules (runyard.webguard) and the token."""

    def __init__(self, app, allowed: frozenset[str] | None, token: str | None) -> None:
        self.app, self.allowed, self.token = app, allowed, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = webguard.asgi_headers(scope)
        refused = webguard.refusal(scope["method"], headers, self.allowed, page_header=True)
        if refused is None and self.token:
            refused = self._token_refusal(scope, headers)
            if refused == "cookie":  # /?token=T: remember it in a cookie and show the page without it in the URL
                return await _send(send, 303, b"", [(b"location", b"/"), (b"set-cookie", (
                    f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/").encode())])
        if refused is not None:
            status, message = refused
            return await _send(send, status, json.dumps({"error": message}).encode(),
                               [(b"content-type", b"application/json")])
        await self.app(scope, receive, send)

    def _token_refusal(self, scope, headers: dict[str, str]):
        path = scope["path"]
        given = [headers.get("authorization", "").removeprefix("Bearer ").strip()]
        given += [v for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k == "token"]
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except CookieError:
            pass
        if TOKEN_COOKIE in cookies:
            given.append(cookies[TOKEN_COOKIE].value)
        ok = any(g and _secrets.compare_digest(g.encode(), self.token.encode()) for g in given)
        if path == "/" and ok and b"token=" in scope.get("query_string", b""):
            return "cookie"
        if ok or not path.startswith("/api/"):  # the page and its static files hold no data
            return None
        return 401, "this studio needs its token: open the URL it printed (/?token=…) or send Authorization: Bearer TOKEN"


async def _send(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(workspace: "Workspace", *, token: str | None = None, host: str = "127.0.0.1",
               allow_hosts: tuple[str, ...] = ()) -> FastAPI:
    """The studio for ``workspace``, served on ``host`` (names in ``allow_hosts`` are accepted as Host too)."""
    # (fastapi is imported with this module: routes' annotations such as Request must resolve at module level)
    from runyard.run import Run
    from runyard.status import RunStatus

    ws = workspace
    charts = ChartLibrary.find()
    app = FastAPI(title="runyard studio", docs_url=None, redoc_url=None)
    app.state.token = token
    app.add_middleware(Guard, allowed=webguard.allowed_hosts(host, allow_hosts), token=token)

    @app.exception_handler(RunyardError)
    async def _runyard_error(_request: Request, exc: RunyardError):
        status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, (ValidationError, ValueError)) else 409
        return JSONResponse({"error": str(exc)}, status_code=status)

    def _run(run_id: str) -> Run:
        return Run._by_id(ws, run_id)

    def _row(info, latest: dict[str, dict[str, Any]]) -> dict[str, Any]:
        start, end = info.start_time, info.end_time
        duration = ((end or time.time()) - start) if start else None
        return {"id": info.run_id, "name": info.display_name or info.run_id, "experiment": info.experiment_name,
                "status": info.status.value, "type": info.run_type, "created": info.created_at, "start": start,
                "end": end, "duration": duration, "target": info.compute_target, "parent": info.parent_run_id,
                "params": dict(info.params), "tags": dict(info.tags), "metrics": latest.get(info.run_id, {})}

    def _latest(run_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in ws.metadata.get_latest_metrics(run_ids):
            if m.kind == "scalar":
                out.setdefault(m.run_id, {})[m.name] = _json_value(m.value)
        return out

    # -- API: lists ---------------------------------------------------------------------------------------------
    @app.get("/api/summary")
    def summary() -> dict[str, Any]:
        store = ws.metadata
        experiments = [{"id": e.id, "name": e.name, "runs": store.count_runs(experiment_id=e.id, top_level_only=True)}
                       for e in store.list_experiments()]
        return {"workspace": ws.name, "path": str(ws.path), "experiments": experiments, "token": bool(app.state.token)}

    @app.get("/api/runs")
    def runs(experiment: str | None = None, status: str | None = None, search: str | None = None,
             sort: str | None = None, limit: int = 50, offset: int = 0, children: bool = False,
             parent: str | None = None) -> dict[str, Any]:
        store = ws.metadata
        if not 1 <= limit <= 500 or offset < 0:
            raise ValidationError("limit must be 1-500 and offset >= 0")
        exp_id = store.get_experiment(experiment).id if experiment else None
        statuses = [RunStatus.parse(s) for s in status.split(",")] if status else None
        filters = {"experiment_id": exp_id, "statuses": statuses, "search": search or None,
                   "top_level_only": not children and parent is None, "parent_run_id": parent}
        page = store.list_runs(limit=limit, offset=offset, sort=sort, **filters)
        total = store.count_runs(**filters)
        latest = _latest([r.run_id for r in page])
        rows = [_row(r, latest) for r in page]
        params = sorted({k for r in rows for k in r["params"]})
        metrics = sorted({k for r in rows for k in r["metrics"]})
        return {"total": total, "offset": offset, "limit": limit, "runs": rows, "param_keys": params,
                "metric_keys": metrics}

    # -- API: one run -------------------------------------------------------------------------------------------
    @app.get("/api/runs/{run_id}")
    def run_details(run_id: str) -> dict[str, Any]:
        from runyard.data import inputs

        run = _run(run_id)
        info = run._refresh()
        row = _row(info, _latest([run.id]))
        definition = info.definition or {}
        props = dict(info.properties)
        timeline = [{"status": "Queued", "at": info.created_at}]
        if info.start_time:
            timeline.append({"status": "Running", "at": info.start_time})
        if info.end_time and info.status.value in _TERMINAL:
            timeline.append({"status": info.status.value, "at": info.end_time})
        ranks = sorted({int(a.path.split("user_log_")[1].split(".")[0].split("_")[0])
                        for a in ws.metadata.list_artifacts(run.id, "logs")
                        if a.path.startswith("logs/user_log_") and a.path.split("user_log_")[1][:1].isdigit()})
        ranks = sorted(set(ranks) | set(range(_world_size(definition))))
        children = ws.metadata.count_runs(parent_run_id=run.id)
        primary = None
        if PRIMARY_METRIC in props or info.run_type == SWEEP_RUN_TYPE:
            name, maximize = primary_metric(info)
            primary = {"name": name, "goal": "maximize" if maximize else "minimize"}
        return {**row, "description": info.description, "properties": props, "error": info.error,
                "exit_code": info.exit_code, "arguments": definition.get("arguments"),
                "script": definition.get("script"), "environment_key": props.get("runyard.environment_key"),
                "environment": props.get("runyard.environment"), "snapshot": props.get("ContentSnapshotId"),
                "inputs": inputs.details(ws, run.id) if definition.get("inputs") else [], "timeline": timeline,
                "ranks": ranks or [0], "children": children, "primary_metric": primary,
                "terminal": info.status.value in _TERMINAL}

    @app.get("/api/runs/{run_id}/metrics")
    def run_metrics(run_id: str, points: int = MAX_POINTS) -> dict[str, Any]:
        _run(run_id)
        return _metrics(ws, run_id, max(10, min(points, 20000)))

    @app.get("/api/compare")
    def compare(ids: str, points: int = 500) -> dict[str, Any]:
        chosen = [i for i in ids.split(",") if i][:20]
        out = []
        latest = _latest(chosen)
        for run_id in chosen:
            info = ws.metadata.get_run(run_id)
            out.append({**_row(info, latest), "series": _metrics(ws, run_id, points)["series"]})
        return {"runs": out}

    @app.get("/api/runs/{run_id}/sweep")
    def sweep(run_id: str, points: int = SWEEP_POINTS) -> dict[str, Any]:
        """A HyperDrive parent's trials: configuration, status, final primary metric and its series, which trial
        is best (HyperDriveRun's own ranking) and why a policy stopped one."""
        run = _run(run_id)
        info = run._refresh()
        if info.run_type != SWEEP_RUN_TYPE:
            raise ValidationError(f"run {run_id} is not a sweep (its type is {info.run_type!r})")
        metric, maximize = primary_metric(info)
        ranked = run.get_children_sorted_by_primary_metric()
        children = {c.run_id: c for c in ws.metadata.list_runs(parent_run_id=run.id, limit=100000)}
        points = max(10, min(points, 2000))
        trials = []
        for row in ranked:
            child = children.get(row["run_id"])
            if child is None:
                continue
            series = ws.metadata.get_metric_series(child.run_id, metric, points)
            trials.append({"id": child.run_id, "name": child.display_name or child.run_id, "status": row["status"],
                           "hyperparameters": row["hyperparameters"], "final": _json_value(row["best_primary_metric"]),
                           "stopped": child.tags.get(STOPPED_BY_TAG), "start": child.start_time,
                           "series": _series(series)})
        best = next((t["id"] for t in trials if t["final"] is not None), None)
        return {"metric": metric, "goal": "maximize" if maximize else "minimize", "best": best, "trials": trials}

    @app.get("/api/runs/{run_id}/files")
    def run_files(run_id: str) -> dict[str, Any]:
        _run(run_id)
        return {"files": [{"path": a.path, "size": a.size} for a in ws.metadata.list_artifacts(run_id)]}

    @app.get("/api/runs/{run_id}/file")
    def run_file(run_id: str, path: str):
        run = _run(run_id)
        if path not in {a.path for a in ws.metadata.list_artifacts(run_id, path)}:
            raise NotFound(f"run {run_id} has no file {path!r}")
        handle = ws.artifacts.open(run.id, path)
        name = os.path.basename(path)

        def chunks() -> Iterator[bytes]:
            with handle:
                while block := handle.read(1 << 16):
                    yield block

        media = "image/png" if name.endswith(".png") else "application/octet-stream"
        disposition = content_disposition("inline" if media.startswith("image/") else "attachment", name)
        return StreamingResponse(chunks(), media_type=media, headers={"Content-Disposition": disposition})

    @app.get("/api/runs/{run_id}/logs")
    async def run_logs(run_id: str, request: Request, rank: int = 0, metrics: str | None = None):
        """Server-sent events: the rank's output so far, then each new chunk until the run ends; with ``metrics``
        (the page's {name: [last_id, count]}) also the values logged since, each second (``LiveMetrics``)."""
        run = _run(run_id)
        live = LiveMetrics(ws, run.id, _known(metrics)) if metrics is not None else None
        target = run._target()
        from runyard.runtime.logfiles import stored_log

        source = target.log_iter(run.id, rank=rank, follow=True) if target else stored_log(ws, run.id, rank)
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def send(kind: str, data: str) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, data))
                return True
            except RuntimeError:  # the client went away and its loop with it
                stop.set()
                return False

        def pump() -> None:
            try:
                for text in source:
                    if stop.is_set() or not send("log", text):
                        return
            except Exception as exc:  # noqa: BLE001 - shown in the page
                send("error", str(exc))
            if not stop.is_set():
                send("end", ws.metadata.get_run(run.id).status.value)

        def pump_metrics() -> None:
            while not stop.wait(LIVE_SECONDS):
                try:
                    news = live.poll()
                except Exception as exc:  # noqa: BLE001 - shown in the page; the log goes on
                    send("error", f"metrics: {exc}")
                    return
                if news and not send("metrics", news):
                    return

        threading.Thread(target=pump, name="runyard-ui-log", daemon=True).start()
        if live is not None:
            threading.Thread(target=pump_metrics, name="runyard-ui-metrics", daemon=True).start()

        async def events():
            try:
                while True:
                    if await request.is_disconnected():
                        return
                    try:
                        kind, data = await asyncio.wait_for(queue.get(), 1.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
                    if kind == "end":
                        return
            finally:
                stop.set()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/runs/{run_id}/cancel")
    def run_cancel(run_id: str) -> dict[str, Any]:
        run = _run(run_id)
        run.cancel()
        return {"id": run.id, "status": run.get_status()}

    @app.post("/api/runs/{run_id}/tensorboard")
    def run_tensorboard(run_id: str) -> dict[str, Any]:
        from runyard.ui.tensorboard import start

        return start(ws, [run_id])

    # -- API: registries ----------------------------------------------------------------------------------------
    @app.get("/api/models")
    def models() -> dict[str, Any]:
        from runyard.model import Model

        return {"models": [{"name": m.name, "version": m.version, "framework": m.model_framework,
                            "framework_version": m.model_framework_version, "aliases": m.aliases, "run": m.run_id,
                            "datasets": m.datasets, "tags": m.tags, "created": m.created_time,
                            "files": len(m.files)} for m in Model.list(ws, limit=500)]}

    @app.get("/api/services")
    def services() -> dict[str, Any]:
        from runyard.deploy import LocalWebservice

        out = []
        for svc in LocalWebservice.list(ws):
            out.append({"name": svc.name, "state": svc.state, "scoring_uri": svc.scoring_uri,
                        "models": [getattr(m, "id", str(m)) for m in getattr(svc, "models", [])]})
        return {"services": out}

    @app.get("/api/services/{name}/logs")
    def service_logs(name: str) -> dict[str, Any]:
        from runyard.deploy import LocalWebservice

        return {"logs": LocalWebservice(ws, name).get_logs()[-20000:]}

    @app.get("/api/datasets")
    def datasets() -> dict[str, Any]:
        from runyard.data import Dataset

        out = []
        for latest in Dataset.list(ws):
            for d in latest.versions():
                out.append({"name": d.name, "version": d.version, "type": d._type, "files": len(d.files),
                            "bytes": d.total_bytes, "description": d.description, "tags": d.tags,
                            "runs": [r.id for r in d.runs()]})
        return {"datasets": out}

    @app.get("/api/compute")
    def compute() -> dict[str, Any]:
        out = []
        for name, target in ws.compute_targets.items():
            queued = ws.metadata.count_runs(statuses=[RunStatus.QUEUED]) if name == "local" else None
            entry = {"name": name, "type": target.type}
            try:
                entry["status"] = target.get_status().serialize()
            except Exception as exc:  # noqa: BLE001 - a target that cannot say is shown so
                entry["status"] = {"error": str(exc)}
            if queued is not None:
                entry["queued"] = queued
            out.append(entry)
        return {"compute": out}

    @app.get("/api/environments")
    def environments() -> dict[str, Any]:
        from runyard.environments import env_root

        root = env_root(ws)
        cached = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        return {"registered": [{"name": e.name, "version": e.version, "created": e.created_at}
                               for e in ws.metadata.list_environments()],
                "cache": {"path": str(root), "environments": cached}}

    # -- the page -----------------------------------------------------------------------------------------------
    page = (STATIC / "index.html").read_text().replace("PLOTLY_SRC", charts.url)

    @app.get("/", include_in_schema=False)
    def index():
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get(charts.url, include_in_schema=False)
    def plotly_js(request: Request):
        """plotly.js from the installed plotly package (no CDN: the studio works offline), gzipped once, cached
        by the browser for good (its URL names the version)."""
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(charts.gzipped(), media_type="text/javascript",
                            headers={**headers, "Content-Encoding": "gzip"})
        return FileResponse(charts.path, media_type="text/javascript", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _world_size(definition: dict[str, Any]) -> int:
    """The processes a run's job has (none known for a run without a job: logged interactively, a sweep's parent)."""
    if "script" not in definition:
        return 0
    try:
        return JobSpec.from_definition(definition).world_size
    except (RunyardError, KeyError, TypeError):
        return 1


def _numeric(latest) -> bool:
    value = latest.value
    return latest.kind in ("scalar", "list") and (
        value is None or isinstance(value, (int, float)) and not isinstance(value, bool))


def _series(s) -> dict[str, Any]:
    return {"steps": s.steps, "values": [_json_value(v) for v in s.values], "times": s.times, "count": s.count,
            "reduced": s.reduced, "last_id": s.last_id}


def _metrics(ws: "Workspace", run_id: str, points: int) -> dict[str, Any]:
    """Line series (numbers by step with their times; long ones reduced in the database), rows/tables, images, and
    every metric's value count (what the live stream compares with)."""
    store = ws.metadata
    series: dict[str, dict[str, Any]] = {}
    tables: dict[str, list[Any]] = {}
    images: list[dict[str, str]] = []
    counts: dict[str, int] = {}
    others = []
    for latest in store.get_latest_metrics([run_id]):
        counts[latest.name] = latest.value_count
        if _numeric(latest):
            series[latest.name] = _series(store.get_metric_series(run_id, latest.name, points,
                                                                  known=(latest.value_count, latest.step)))
        else:
            others.append(latest.name)
    for rec in store.get_metric_history([run_id], names=others) if others else []:
        if rec.kind == "image":
            images.append({"name": rec.name, "path": rec.value if isinstance(rec.value, str) else str(rec.value)})
        else:
            tables.setdefault(rec.name, []).append(_json_value(rec.value))
    return {"series": series, "tables": tables, "images": images, "counts": counts}


class LiveMetrics:
    """What a live run page appends to its charts: each numeric series' values logged since the page read it
    (``known``: name → (last_id, count) as the page has them), a whole series again when it is new or so far behind
    that appending would lag (reduced as the page's first read), and a note when a table or image changed."""

    def __init__(self, ws: "Workspace", run_id: str, known: dict[str, tuple[int, int]]) -> None:
        self.store, self.run_id, self.known = ws.metadata, run_id, dict(known)

    def poll(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        refresh = False
        for latest in self.store.get_latest_metrics([self.run_id]):
            last_id, count = self.known.get(latest.name, (None, None))
            if count == latest.value_count:
                continue
            if not _numeric(latest):
                refresh, self.known[latest.name] = True, (0, latest.value_count)
                continue
            if last_id is None or latest.value_count - count > MAX_POINTS:
                s = self.store.get_metric_series(self.run_id, latest.name, MAX_POINTS)
                out[latest.name] = {**_series(s), "replace": True}
            else:
                s = self.store.get_metric_series(self.run_id, latest.name, MAX_POINTS, after=last_id)
                if not s.count:
                    self.known[latest.name] = (last_id, latest.value_count)
                    continue
                out[latest.name] = {**_series(s), "count": count + s.count}
            self.known[latest.name] = (out[latest.name]["last_id"], out[latest.name]["count"])
        if not out and not refresh:
            return None
        return {"series": out, "refresh": refresh}


def _known(text: str | None) -> dict[str, tuple[int, int]]:
    """The live stream's ``metrics`` argument: JSON {name: [last_id, count]}."""
    try:
        raw = json.loads(text or "{}")
        return {str(k): (int(v[0]), int(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, IndexError, AttributeError) as exc:
        raise ValidationError(f"metrics must be JSON {{name: [last_id, count]}}: {exc}") from None


__all__ = ["MAX_POINTS", "LiveMetrics", "create_app"]
