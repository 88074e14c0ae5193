"""The web studio (``runyard ui``) and TensorBoard over runs' logs (``runyard tensorboard``)."""
from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runyard.workspace import Workspace


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def serve(workspace: "Workspace", host: str = "127.0.0.1", port: int = 5600, token: str | None = None) -> None:
    """Serve the studio until interrupted: read-only on a non-loopback host unless a token is given."""
    import uvicorn

    from runyard.ui.app import create_app

    app = create_app(workspace, token=token, read_only=not is_loopback(host))
    uvicorn.run(app, host=host, port=port, log_level="warning")


__all__ = ["is_loopback", "serve"]
