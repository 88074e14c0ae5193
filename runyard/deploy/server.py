"""The scoring server of a deployed service (FastAPI + uvicorn), one process per service.

    python -m runyard.deploy.server SERVICE_DIR

``SERVICE_DIR/service.json`` says what to serve: a scoring script (Azure's contract: ``init()`` once, ``run(raw_data)``
per request, ``AZUREML_MODEL_DIR``/``RUNYARD_MODEL_DIR`` set to the models' folder) or, with no script, the model's
framework (``runyard.deploy.nocode``). Routes: ``POST /score``, ``GET /health``, ``GET /swagger.json`` (and FastAPI's
``/openapi.json``, ``/docs``). With auth enabled every route but ``/health`` needs ``Authorization: Bearer <key>``
(the primary or the secondary key; keys are re-read when ``keys.json`` changes, so ``regen_key`` needs no restart).
A body over the size limit gets 413, a malformed one 400, an exception in ``run()`` 500 with a short message (the
traceback goes to the service log only), a ``run()`` slower than the timeout 504.
"""
import asyncio
import hmac
import importlib.util
import json
import logging
import os
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runyard import webguard

log = logging.getLogger("runyard.service")


class Keys:
    """The service's keys, re-read when their file changes (one stat per request)."""

    def __init__(self, path: Path) -> None:
        self.path, self._stamp, self._keys = path, None, ()

    def valid(self, header: str | None) -> bool:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return False
        if stamp != self._stamp:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._keys, self._stamp = (data["primary"], data["secondary"]), stamp
        if not header or not header.startswith("Bearer "):
            return False
        given = header[len("Bearer "):].strip()
        return any(hmac.compare_digest(given, key) for key in self._keys)


def load_scorer(spec: dict[str, Any]):
    """(init, run) of the scoring script, or of the no-code scorer for the model's framework."""
    if spec.get("entry_script"):
        source = spec["source_directory"]
        sys.path.insert(0, source)
        path = os.path.join(source, spec["entry_script"])
        module_spec = importlib.util.spec_from_file_location("score", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise RuntimeError(f"{spec['entry_script']} has no {name}() function (a scoring script defines "
                                   "init() and run(raw_data))")
        return module.init, module.run
    from runyard.deploy import nocode

    return nocode.scorer(spec["models"][0], spec["model_dir"])


_DENIED = {"error": "missing or wrong key: send 'Authorization: Bearer <key>' (service.get_keys())"}


async def _respond(send, status: int, payload) -> None:
    """A JSON response (text as is, for a run() that returns str or bytes)."""
    if isinstance(payload, bytes):
        body, kind = payload, b"text/plain; charset=utf-8"
    elif isinstance(payload, str):
        body, kind = payload.encode("utf-8"), b"text/plain; charset=utf-8"
    else:
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        kind = b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Scoring:
    """Calls ``run(raw)``: in a worker thread, with the timeout, or on the event loop itself where that is safe.

    A thread hop costs ~75 µs here, more than scoring a small request with scikit-learn or ONNX, and cuts such a
    service's throughput by a third. So for runyard's own no-code scorers (``may_inline``; a scoring script's
    ``run()`` may block on anything, and always runs in a thread under the timeout), once calls have proven fast (each
    under ``FAST`` s in a thread) a request no larger than those runs on the loop. The first call on the loop that
    takes over ``SLOW`` s sends every later call to the threads for good: the loop is blocked at most once."""

    FAST, SLOW = 0.005, 0.02

    def __init__(self, run, timeout: float, may_inline: bool = True) -> None:
        self.run, self.timeout = run, timeout
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="runyard-score")
        self.fast_size = -1  # the largest request that scored fast in a thread (-1: none yet)
        self.inline = may_inline  # False: every call in a thread (a scoring script, or a call on the loop was slow)

    async def call(self, raw: str):
        size = len(raw)
        if self.inline and size <= self.fast_size:
            started = time.perf_counter()
            try:
                return self.run(raw)
            finally:
                took = time.perf_counter() - started
                if took > self.SLOW:
                    self.inline = False
                    log.info("run() took %.0f ms on the event loop: scoring in worker threads from now on", took * 1e3)
        result, took = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(self.executor, self._timed, raw), self.timeout)
        if took <= self.FAST and self.inline:
            self.fast_size = max(self.fast_size, size)
        return result

    def _timed(self, raw: str):
        started = time.perf_counter()
        result = self.run(raw)
        return result, time.perf_counter() - started


def build_app(service_dir: Path):
    # No `from __future__ import annotations` in this module: FastAPI reads the route functions' annotations
    # (``request: Request``) as real objects.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    spec = read_spec(service_dir)
    os.environ["AZUREML_MODEL_DIR"] = os.environ["RUNYARD_MODEL_DIR"] = spec["model_dir"]
    init, run = load_scorer(spec)
    init()
    keys = Keys(Path(spec.get("keys_file") or service_dir / "keys.json")) if spec["auth_enabled"] else None
    limit = int(spec["max_request_mb"] * (1 << 20))
    timeout = float(spec["timeout_seconds"])
    app = FastAPI(title=f"runyard service {spec['name']}", version=str(spec.get("revision", 1)),
                  description="Scores JSON with the deployed model(s): POST /score.")

    def denied(authorization: str | None) -> bool:
        return keys is not None and not keys.valid(authorization)

    @app.get("/health")
    @app.get("/")
    async def health() -> dict:
        return {"status": "Healthy", "service": spec["name"], "models": spec["model_ids"]}

    @app.get("/swagger.json")
    async def swagger(request: Request):
        if denied(request.headers.get("authorization")):
            return JSONResponse(_DENIED, status_code=401)
        return app.openapi()

    def openapi() -> dict:  # /score is served below FastAPI (see score()); its description is added here
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["paths"]["/score"] = {"post": {
                "summary": "Score", "requestBody": {"content": {"application/json": {"schema": {}}}},
                "responses": {"200": {"description": "run()'s result as JSON"}, **{str(code): {"description": why}
                              for code, why in ((400, "malformed input"), (401, "no or wrong key"),
                                                (413, "body too large"), (500, "run() raised"),
                                                (504, "run() too slow"))}}}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    scoring = Scoring(run, timeout, may_inline=not spec.get("entry_script"))
    too_large = {"error": f"request body over {spec['max_request_mb']:g} MB"}

    async def score(scope, receive, send) -> None:
        """POST /score as a bare ASGI handler: FastAPI's request and response objects cost ~15% of a small request."""
        if scope["method"] != "POST":
            return await _respond(send, 405, {"error": "POST the input to /score"})
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if denied(authorization):
            return await _respond(send, 401, _DENIED)
        body, received, more = bytearray(), 0, True
        while more:  # past the limit the rest is read and dropped: a client still sending gets the 413
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received <= limit:
                body += chunk
            more = message.get("more_body", False)
        if received > limit:
            return await _respond(send, 413, too_large)
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            return await _respond(send, 400, {"error": "the request body is not UTF-8 text"})
        try:
            result = await scoring.call(raw)
        except asyncio.TimeoutError:
            log.error("run() took longer than %s s", timeout)
            return await _respond(send, 504, {"error": f"scoring took longer than {timeout:g} s"})
        except ValueError as exc:  # the scorer says the input is wrong
            return await _respond(send, 400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - the client gets a line, the log the traceback
            log.error("run() raised:\n%s", traceback.format_exc())
            return await _respond(send, 500, {"error": f"run() raised {type(exc).__name__}: {str(exc)[:300]}"})
        try:
            await _respond(send, 200, result)
        except (TypeError, ValueError) as exc:  # nothing was sent yet: json.dumps refused the result
            log.error("run() returned %s, which JSON cannot hold: %s", type(result).__name__, exc)
            await _respond(send, 500, {"error": f"run() returned a {type(result).__name__} that is not JSON: {exc}"})

    allowed = webguard.allowed_hosts(spec.get("host", "127.0.0.1"))

    async def front(scope, receive, send) -> None:
        if scope["type"] == "http":
            # A foreign Host (DNS rebinding) or a browser page of another origin posting here is refused; programs
            # (curl, requests, Azure's clients) send no Origin and are served as before.
            refused = webguard.refusal(scope["method"], webguard.asgi_headers(scope), allowed)
            if refused is not None:
                return await _respond(send, refused[0], {"error": refused[1]})
            if scope["path"] == "/score":
                return await score(scope, receive, send)
        await app(scope, receive, send)

    return front, spec


def read_spec(service_dir: Path) -> dict[str, Any]:
    """``service.json``, with what the process's environment overrides: in a model package's image the address
    (``RUNYARD_SERVICE_HOST``, ``RUNYARD_SERVICE_PORT``: ``docker run -e``) and the keys (``RUNYARD_SERVICE_KEYS``,
    a mounted ``keys.json``: auth on)."""
    spec = json.loads((service_dir / "service.json").read_text(encoding="utf-8"))
    if os.environ.get("RUNYARD_SERVICE_HOST"):
        spec["host"] = os.environ["RUNYARD_SERVICE_HOST"]
    if os.environ.get("RUNYARD_SERVICE_PORT"):
        spec["port"] = int(os.environ["RUNYARD_SERVICE_PORT"])
    if os.environ.get("RUNYARD_SERVICE_KEYS"):
        spec["auth_enabled"], spec["keys_file"] = True, os.environ["RUNYARD_SERVICE_KEYS"]
    return spec


def worker_app():
    """One of several worker processes (uvicorn's factory): builds the app of ``RUNYARD_SERVICE_DIR``. One that
    cannot start ends the whole service (uvicorn would start it again and again), so the deployer sees it fail."""
    _log_to_stderr()
    try:
        return build_app(Path(os.environ[_SERVICE_DIR]))[0]
    except Exception:  # noqa: BLE001 - the deployer reads this from the log and reports the service Failed
        log.error("the service could not start:\n%s", traceback.format_exc())
        os.killpg(os.getpgid(0), signal.SIGTERM)  # the service's own process group (started as a new session)
        raise


_SERVICE_DIR = "RUNYARD_SERVICE_DIR"


def _log_to_stderr() -> None:  # the service log (the process's stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str]) -> int:
    import uvicorn

    _log_to_stderr()
    service_dir = Path(argv[1])
    spec = read_spec(service_dir)
    workers = int(spec.get("workers", 1))
    options = dict(host=spec.get("host", "127.0.0.1"), port=spec["port"], log_level="warning", access_log=False,
                   timeout_keep_alive=30)
    if workers > 1:  # processes sharing the port, each with the model loaded
        os.environ[_SERVICE_DIR] = str(service_dir.resolve())
        log.info("serving %s on %s:%s with %d worker processes", spec["name"], options["host"], spec["port"], workers)
        uvicorn.run("runyard.deploy.server:worker_app", factory=True, workers=workers, **options)
        return 0
    try:
        app, spec = build_app(service_dir)
    except Exception:  # noqa: BLE001 - the deployer reads this from the log and reports the service Failed
        log.error("the service could not start:\n%s", traceback.format_exc())
        return 1
    log.info("serving %s on %s:%s", spec["name"], options["host"], spec["port"])
    uvicorn.run(app, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
