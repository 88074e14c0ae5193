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


def serve(workspace: "Workspace", host: str = "127.0.0.1", port: int = 5600, token: str | None = None,
          allow_hosts: tuple[str, ...] = ()) -> None:
    """Serve the studio until interrupted (``token``: see ``studio_token``)."""
    import uvicorn

    from runyard.ui.app import create_app

    app = create_app(workspace, token=token, host=host, allow_hosts=allow_hosts)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def studio_token(host: str, token: str | None) -> str | None:
    """The token the studio needs: the one given, else a generated one when it is served beyond loopback."""
    if token or is_loopback(host):
        return token or None
    import secrets

    return secrets.token_urlsafe(24)


__all__ = ["is_loopback", "serve", "studio_token"]
