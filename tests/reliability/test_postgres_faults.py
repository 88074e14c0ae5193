"""PostgreSQL under load and outages (issue 21 §3, §4), against a private, default-configured server that the tests
start and stop (Debian's postgresql; max_connections=100, as shipped)."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass

import pytest

from conftest import free_port, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.postgres]


@dataclass
class Server:
    url: str
    bin: str
    data: str
    port: int

    def _pg(self, command: str) -> None:
        as_user = ["su", "postgres", "-s", "/bin/bash", "-c", command] if os.getuid() == 0 else ["bash", "-c", command]
        subprocess.run(as_user, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg(f"{self.bin}/pg_ctl -D {self.data} -w -l {self.data}/server.log -o "
                 f"'-c listen_addresses=127.0.0.1 -p {self.port} -k /tmp -c fsync=off' start")

    def stop(self) -> None:
        self._pg(f"{self.bin}/pg_ctl -D {self.data} -w -m fast stop")

    def connections(self) -> int:
        out = subprocess.run(["su", "postgres", "-s", "/bin/bash", "-c",
                              f"{self.bin}/psql -h 127.0.0.1 -p {self.port} -U postgres -tAc "
                              "\"select count(*) from pg_stat_activity where backend_type='client backend'\""]
                             if os.getuid() == 0 else [], capture_output=True, text=True)
        return int(out.stdout.strip() or 0)


@pytest.fixture(scope="module")
def pg():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert found, "Debian's postgresql is installed by scripts/setup.sh"
    data = tempfile.mkdtemp(prefix="runyard-pg-faults-")
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
    server = Server("", found[-1], data, free_port())
    server._pg(f"{server.bin}/initdb -D {data} -A trust -U postgres")
    server.start()
    server._pg(f"{server.bin}/createdb -h 127.0.0.1 -p {server.port} -U postgres faults")
    server.url = f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/faults"
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(data, ignore_errors=True)


LOGGER = textwrap.dedent("""
    from runyard import Run
    run = Run.get_context()
    for i in range(10_000):
        run.log("v", float(i))
""")


def test_a_hundred_concurrent_runs_on_a_default_server(pg, tmp_path, monkeypatch):
    """Each process holds one connection at most, closed when idle; a connection refused for "too many clients"
    is waited for. 100 runs (200 processes: scripts and supervisors) against max_connections=100."""
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "100")
    ws = Workspace(tmp_path / "ws", tracking_uri=pg.url)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "log.py").write_text(LOGGER)
    exp = Experiment(ws, "hundred")
    started = time.monotonic()
    runs = [exp.submit(ScriptRunConfig(str(project), "log.py")) for _ in range(100)]
    peak = 0

    def all_done() -> bool:
        nonlocal peak
        peak = max(peak, pg.connections())
        return all(r.get_status() in ("Completed", "Failed", "Canceled") for r in runs)

    wait_for(all_done, 900, "100 runs to end", interval=1.0)
    took = time.monotonic() - started
    statuses = [r.get_status() for r in runs]
    assert statuses.count("Completed") == 100, [(r.id, r.get_details().get("error")) for r in runs
                                                 if r.get_status() != "Completed"][:3]
    counts = {m.run_id: m.value_count for m in ws.metadata.get_latest_metrics([r.id for r in runs])}
    assert sum(counts.values()) == 1_000_000 and set(counts.values()) == {10_000}
    print(f"100 runs × 10,000 values on max_connections=100: {took:.0f} s, peak {peak} connections")
