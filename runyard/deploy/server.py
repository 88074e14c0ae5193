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
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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


def build_app(service_dir: Path):
    # No `from __future__ import annotations` in this module: FastAPI reads the route functions' annotations
    # (``request: Request``) as real objects.
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    spec = json.loads((service_dir / "service.json").read_text(encoding="utf-8"))
    os.environ["AZUREML_MODEL_DIR"] = os.environ["RUNYARD_MODEL_DIR"] = spec["model_dir"]
    init, run = load_scorer(spec)
    init()
    keys = Keys(service_dir / "keys.json") if spec["auth_enabled"] else None
    limit = int(spec["max_request_mb"] * (1 << 20))
    timeout = float(spec["timeout_seconds"])
    app = FastAPI(title=f"runyard service {spec['name']}", version=str(spec.get("revision", 1)),
                  description="Scores JSON with the deployed model(s): POST /score.")

    def denied(request: Request):
        if keys is not None and not keys.valid(request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong key: send 'Authorization: Bearer <key>' "
                                          "(service.get_keys())"}, status_code=401)
        return None

    @app.get("/health")
    @app.get("/")
    async def health() -> dict:
        return {"status": "Healthy", "service": spec["name"], "models": spec["model_ids"]}

    @app.get("/swagger.json")
    async def swagger(request: Request):
        return denied(request) or app.openapi()

    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="runyard-score")
    too_large = {"error": f"request body over {spec['max_request_mb']:g} MB"}

    @app.post("/score", responses={400: {"description": "malformed input"}, 401: {"description": "no or wrong key"},
                                   413: {"description": "body too large"}, 500: {"description": "run() raised"},
                                   504: {"description": "run() too slow"}})
    async def score(request: Request):
        refused = denied(request)
        if refused is not None:
            return refused
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) <= limit:
            body = await request.body()
        else:  # unknown or too large: read it in chunks, keeping at most the limit (the rest is dropped, so that
            chunks, received = [], 0  # a client still sending gets the 413 instead of a broken pipe)
            async for chunk in request.stream():
                received += len(chunk)
                if received <= limit:
                    chunks.append(chunk)
            if received > limit:
                return JSONResponse(too_large, status_code=413)
            body = b"".join(chunks)
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            return JSONResponse({"error": "the request body is not UTF-8 text"}, status_code=400)
        try:
            result = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(executor, run, raw), timeout)
        except asyncio.TimeoutError:
            log.error("run() took longer than %s s", timeout)
            return JSONResponse({"error": f"scoring took longer than {timeout:g} s"}, status_code=504)
        except ValueError as exc:  # the scorer says the input is wrong
            return JSONResponse({"error": str(exc)}, status_code=400)
        except Exception as exc:  # noqa: BLE001 - the client gets a line, the log the traceback
            log.error("run() raised:\n%s", traceback.format_exc())
            return JSONResponse({"error": f"run() raised {type(exc).__name__}: {str(exc)[:300]}"}, status_code=500)
        if isinstance(result, (bytes, str)):
            return PlainTextResponse(result if isinstance(result, str) else result.decode("utf-8", "replace"))
        return JSONResponse(result)

    return app, spec


def main(argv: list[str]) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service_dir = Path(argv[1])
    try:
        app, spec = build_app(service_dir)
    except Exception:  # noqa: BLE001 - the deployer reads this from the log and reports the service Failed
        log.error("the service could not start:\n%s", traceback.format_exc())
        return 1
    log.info("serving %s on 127.0.0.1:%s", spec["name"], spec["port"])
    uvicorn.run(app, host=spec.get("host", "127.0.0.1"), port=spec["port"], log_level="warning",
                access_log=False, timeout_keep_alive=30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
