"""TensorBoard behind the studio's rules (runyard.webguard): ``python -m runyard.ui.tensorboard_server TB-ARGS…``.

TensorBoard answers any ``Host`` and any origin; started by runyard it runs this wrapper instead, whose server
refuses a foreign ``Host`` (DNS rebinding) and cross-origin requests that change something, as the studio does.
"""
from __future__ import annotations

import json
import sys

from runyard import webguard


def _guarded(wsgi_app, allowed):
    def app(environ, start_response):
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        refused = webguard.refusal(environ.get("REQUEST_METHOD", "GET"), headers, allowed)
        if refused is None:
            return wsgi_app(environ, start_response)
        status, message = refused
        body = json.dumps({"error": message}).encode()
        start_response(f"{status} {'Bad Request' if status == 400 else 'Forbidden'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def main(argv: list[str]) -> int:
    from tensorboard import program

    def server(wsgi_app, flags):
        return program.WerkzeugServer(_guarded(wsgi_app, webguard.allowed_hosts(flags.host or "")), flags)

    board = program.TensorBoard(server_class=server)
    board.configure(argv=["tensorboard", *argv])
    return board.main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
