"""The few calls of Ray's Jobs and State REST APIs that runyard needs (no Ray import in the client)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from runyard.errors import ComputeError, NotFound, RunyardError


def dashboard_url(address: str, dashboard_address: str | None = None) -> str:
    """``http://host:8265`` from an attach address (http(s)://…, ray://host:10001, host:6379)."""
    if dashboard_address:
        return dashboard_address if "://" in dashboard_address else f"http://{dashboard_address}"
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    host = urllib.parse.urlsplit(address if "://" in address else f"//{address}").hostname or "127.0.0.1"
    return f"http://{host}:8265"


def find_dashboard(gcs_address: str, timeout: float = 8.0) -> str:
    """The dashboard of the cluster whose GCS is at ``gcs_address`` (``head:6379``): ``http://head:8265`` when it
    answers there, else the address the dashboard recorded in the GCS (read by a short-lived ``ray`` process, so this
    one never imports Ray); a ComputeError saying what to pass when neither works."""
    import subprocess
    import sys

    default = dashboard_url(gcs_address)
    try:
        RayJobs(default, timeout=2.0)._call("GET", "/api/version")
        return default
    except RunyardError:
        pass
    code = ("import sys; from ray._raylet import GcsClient; "
            "v = GcsClient(address=sys.argv[1]).internal_kv_get(b'dashboard', b'dashboard'); "
            "print(v.decode() if v else '')")
    try:
        out = subprocess.run([sys.executable, "-c", code, gcs_address], capture_output=True, text=True,
                             timeout=timeout, env=with_ray_auth(dict(os.environ)))
        found = out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
        why = ("the cluster recorded no dashboard" if out.returncode == 0
               else (out.stderr.strip().splitlines() or ["no ray here"])[-1])
    except (OSError, subprocess.TimeoutExpired) as exc:
        found, why = "", str(exc)
    if found:
        return found if "://" in found else f"http://{found}"
    raise ComputeError(
        f"the Ray cluster at {gcs_address} has no dashboard at {default}, and asking its GCS where it is failed "
        f"({why}) — pass "
        "RayCompute.attach_configuration(address, dashboard_address='HOST:PORT') (`ray start --head "
        "--dashboard-port` sets it; the head's log says where it listens), or attach with the dashboard's URL")


def ray_auth_token() -> str | None:
    """The token Ray's own clients would send (Ray >= 2.5x: a cluster started where ``~/.ray/auth_token`` exists, or
    with ``RAY_AUTH_MODE=token``, refuses requests without it): ``RAY_AUTH_TOKEN``, else the file at
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``; None with ``RAY_AUTH_MODE=disabled`` or no token."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled":
        return None
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def with_ray_auth(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a Ray process (a node, a GCS client) that must use the token when one exists: a head started where
    a token exists turns token auth on by itself, but a worker node or a client does not, and is then refused."""
    if "RAY_AUTH_MODE" not in env and ray_auth_token():
        return {**env, "RAY_AUTH_MODE": "token"}
    return env


class RayJobs:
    """The few calls of Ray's Jobs and State REST APIs that runyard needs (no Ray import in the client)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url, self.timeout = url.rstrip("/"), timeout

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        token = ray_auth_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()[-500:]
            if exc.code == 404:
                raise NotFound(f"Ray cluster {self.url}: {path} not found ({detail})") from None
            raise ComputeError(f"Ray cluster {self.url} refused {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ComputeError(f"cannot reach the Ray cluster's dashboard at {self.url} ({reason}) — is the cluster "
                               "up, and was it started with the dashboard (ray[default])?") from None
        return json.loads(text) if text.strip() else None

    def version(self) -> dict[str, Any]:
        return self._call("GET", "/api/version")

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes: node_id, node_ip, is_head_node, resources_total."""
        found = self._call("GET", "/api/v0/nodes?limit=10000&detail=false")
        rows = (((found or {}).get("data") or {}).get("result") or {}).get("result") or []
        return [n for n in rows if n.get("state") == "ALIVE"]

    def submit(self, submission_id: str, entrypoint: str, metadata: dict[str, str]) -> str:
        out = self._call("POST", "/api/jobs/", {"entrypoint": entrypoint, "submission_id": submission_id,
                                                "metadata": metadata, "entrypoint_num_cpus": 0,
                                                "runtime_env": {}})
        return out.get("submission_id") or out.get("job_id") or submission_id

    def job(self, submission_id: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", f"/api/jobs/{submission_id}")
        except NotFound:
            return None

    def job_logs(self, submission_id: str) -> str:
        try:
            return (self._call("GET", f"/api/jobs/{submission_id}/logs") or {}).get("logs") or ""
        except (NotFound, ComputeError):
            return ""

    def stop(self, submission_id: str) -> bool:
        try:
            return bool((self._call("POST", f"/api/jobs/{submission_id}/stop") or {}).get("stopped"))
        except NotFound:
            return False
