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


OUTAGE = textwrap.dedent("""
    import os, time
    from runyard import Run
    run = Run.get_context()
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.txt", "w").write("weights")
    for i in range(1500):
        run.log("v", float(i))
    run.flush()
    open("ready", "w").write(str(os.getpid()))
    while not os.path.exists("go"):          # the test stops the database meanwhile
        time.sleep(0.05)
    for i in range(1500, 2000):               # logged while the database is down, then the script ends well
        run.log("v", float(i))
    if os.environ.get("MODE") == "sigterm":
        time.sleep(600)
""")


def _outage_run(pg, tmp_path, monkeypatch, mode):
    monkeypatch.setenv("RUNYARD_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "4")  # the outage outlasts it: readers will reap the run
    monkeypatch.setenv("MODE", mode)
    from runyard.compute import get_target

    ws = Workspace(tmp_path / "ws", tracking_uri=pg.url)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "outage.py").write_text(OUTAGE)
    run = Experiment(ws, "outage").submit(ScriptRunConfig(str(project), "outage.py"))
    workdir = get_target(ws, "local").run_dir(run.id) / "wd"
    wait_for((workdir / "ready").exists, 120, "the script to log its first values")
    return ws, run, workdir


def _nothing_left(ws) -> None:
    assert not list((ws.path / "spool").glob("*")) if (ws.path / "spool").exists() else True
    assert not list(ws.journal_dir.glob("*.journal"))


def test_an_outage_over_the_end_of_a_run_does_not_fail_it(pg, tmp_path, monkeypatch):
    """The database stops while the script logs its last values and ends; the supervisor keeps the outcome
    (Completed), waits for the database, then stores the journal, the outputs and its own log."""
    ws, run, workdir = _outage_run(pg, tmp_path, monkeypatch, "complete")
    pg.stop()
    try:
        (workdir / "go").write_text("")
        time.sleep(15)  # the outage: the script ends meanwhile, its supervisor waits for the database
    finally:
        pg.start()

    def ended() -> bool:
        ws.metadata._last_reap = float("-inf")  # readers reap stale runs: the live supervisor revives its run
        return run.get_status() in ("Completed", "Failed", "Canceled")

    wait_for(ended, 120, "the run to end once the database is back", interval=0.5)
    details = run.get_details()
    assert details["status"] == "Completed", details.get("error")
    assert run.get_metrics()["v"] == [float(i) for i in range(2000)]
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "logs/runyard/supervisor.txt" in names
    _nothing_left(ws)


def test_sigterm_during_an_outage_ends_the_run_within_the_grace(pg, tmp_path, monkeypatch):
    """With the database down, a SIGTERM to the supervisor stops the script within the kill grace and the
    supervisor exits instead of waiting; once the database is back, the next reader records the Canceled outcome it
    left and stores the files and values."""
    import psutil

    from runyard.compute import get_target

    ws, run, workdir = _outage_run(pg, tmp_path, monkeypatch, "sigterm")
    script = psutil.Process(int((workdir / "ready").read_text()))
    supervisor = psutil.Process(get_target(ws, "local").supervisor_pid(run.id))
    pg.stop()
    try:
        (workdir / "go").write_text("")
        time.sleep(1)  # the script logs its last values into the journal
        started = time.monotonic()
        supervisor.terminate()
        psutil.wait_procs([script], timeout=30)
        script_gone = time.monotonic() - started
        psutil.wait_procs([supervisor], timeout=60)
        supervisor_gone = time.monotonic() - started
    finally:
        pg.start()
    assert script_gone <= 3 + 2, f"the script took {script_gone:.1f} s to end (kill grace 3 s)"
    assert supervisor_gone <= 3 + 10, f"the supervisor took {supervisor_gone:.1f} s to end"

    def ended() -> bool:
        ws.metadata._last_reap = float("-inf")
        return run.get_status() in ("Completed", "Failed", "Canceled")

    wait_for(ended, 120, "a reader to record the run's outcome", interval=0.5)
    assert run.get_status() == "Canceled", run.get_details().get("error")
    assert run.get_metrics()["v"] == [float(i) for i in range(2000)]
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "logs/runyard/supervisor.txt" in names
    _nothing_left(ws)
    print(f"SIGTERM with the database down: script ended in {script_gone:.1f} s, supervisor in {supervisor_gone:.1f} s")
