"""Who may talk to runyard's local web servers (the studio, the TensorBoard it starts, model services).

A server on 127.0.0.1 is reachable from every page the user's browser opens. Two attacks follow, and two rules
stop them:

- **DNS rebinding**: a page of ``evil.example`` re-points its name at 127.0.0.1 and reads the server as its own
  origin. Rule: the ``Host`` header must name this server (the address it is bound to, ``localhost``/loopback
  addresses for a loopback server, and names the user allowed), else 400.
- **Cross-site requests**: a page may send a POST to any address (``fetch(..., {mode: 'no-cors'})``, a form); it
  cannot read the answer, but the request acts. Rule: a request that changes something must come from the server's
  own origin (``Origin``/``Sec-Fetch-Site`` when the browser sends them) and, where the server has its own page,
  carry a header only its page sends (a cross-site page cannot add one without a CORS preflight, which is never
  granted). Reading is safe without it: the browser does not let another origin read an answer that grants no CORS.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE_HEADER = "x-runyard-studio"  # sent by the studio's own page with every request that changes something
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "localhost.localdomain", "ip6-localhost")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """Host names a request's ``Host`` may carry; None: any (a wildcard bind with no names given, where a token
    guards the server instead)."""
    names = {n.strip().lower().strip("[]") for n in extra if n and n.strip()}
    if _is_wildcard(bind_host):
        return frozenset(names) if names else None
    names.add(bind_host.lower().strip("[]"))
    if _is_loopback(bind_host):
        names.update(_LOOPBACK_NAMES)
    return frozenset(names)


def host_name(host_header: str) -> str:
    """``"127.0.0.1:5600"`` → ``"127.0.0.1"``, ``"[::1]:80"`` → ``"::1"``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refusal(method: str, headers: dict[str, str], allowed: frozenset[str] | None,
            page_header: bool = False) -> tuple[int, str] | None:
    """(status, message) when a request must be refused, else None. ``headers``: lower-case names."""
    host = headers.get("host", "")
    if allowed is not None and host_name(host) not in allowed:
        return 400, (f"Host {host!r} does not name this server; a page that re-pointed its own name here (DNS "
                     "rebinding) is refused — start the server with --allow-host NAME to serve under another name")
    if method.upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc.lower() != host.lower():
            return 403, f"a page of {origin} may not change anything here (cross-origin request refused)"
    elif origin == "null":
        return 403, "a page of an opaque origin may not change anything here"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return 403, f"a {site} request may not change anything here"
    if page_header and PAGE_HEADER not in headers:
        return 403, (f"changes need the {PAGE_HEADER} header, which the studio's page sends (scripts: add "
                     f"'{PAGE_HEADER}: 1')")
    return None


def asgi_headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


__all__ = ["PAGE_HEADER", "allowed_hosts", "asgi_headers", "host_name", "refusal"]
