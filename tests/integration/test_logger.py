"""The batched metric logger: few transactions for a steady stream, complete flushes, no lost values."""
import threading
import time

from runyard import Experiment
from runyard.context.logger import MetricLogger
from runyard.store.metadata import MetricRecord


class CountingStore:
    """Delegates to the real store, counting transactions (what the training loop pays for)."""

    def __init__(self, store):
        self.store, self.batches, self.sizes = store, 0, []
        self.url = store.url + "#counting"

    def log_batch(self, metrics=(), **kw):
        self.batches += 1
        self.sizes.append(len(metrics))
        self.store.log_batch(metrics=metrics, **kw)


def test_a_steady_trickle_is_written_in_few_transactions(workspace, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOG_FLUSH_INTERVAL", "0.2")
    run = Experiment(workspace, "e").start_logging(outputs=False)
    counting = CountingStore(workspace.metadata)
    logger = MetricLogger(counting)
    t0 = time.time()
    for i in range(20_000):  # ~1 s of logging: bursts of 20 values, 1 ms apart (a training loop's rhythm)
        logger.log(MetricRecord(run.id, "v", i, i, time.time()))
        if i % 20 == 19:
            time.sleep(0.001)
    elapsed = time.time() - t0
    assert logger.flush(10)
    # About one transaction per flush interval, not one per value (nor per trickle of values).
    assert counting.batches <= elapsed / 0.2 + 3, counting.sizes
    assert sum(counting.sizes) == 20_000
    assert len(run.get_metrics()["v"]) == 20_000


def test_flush_writes_a_backlog_of_many_batches(workspace, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOG_BATCH_SIZE", "100")
    monkeypatch.setenv("RUNYARD_LOG_FLUSH_INTERVAL", "30")  # only flush() can make it write in time
    run = Experiment(workspace, "e").start_logging(outputs=False)
    counting = CountingStore(workspace.metadata)
    logger = MetricLogger(counting)
    for i in range(1050):
        logger.log(MetricRecord(run.id, "v", i, i, time.time()))
    assert logger.flush(10)
    assert max(counting.sizes) <= 100 and sum(counting.sizes) == 1050
    assert run.get_metrics()["v"] == list(range(1050))


def test_many_threads_logging_at_once_lose_nothing(workspace):
    run = Experiment(workspace, "e").start_logging(outputs=False)

    def work(t):
        for i in range(5000):
            run.log(f"thread{t}", i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.complete()
    m = run.get_metrics()
    assert all(len(m[f"thread{t}"]) == 5000 for t in range(4))


class OutageStore(CountingStore):
    """The real store behind a switch: while ``down``, every write fails like an unreachable database."""

    down = True

    def log_batch(self, metrics=(), **kw):
        if self.down:
            from runyard.errors import StoreError

            raise StoreError("connection refused (injected outage)")
        super().log_batch(metrics=metrics, **kw)


def test_a_long_outage_spills_to_disk_and_replays_when_the_store_is_back(workspace, monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("RUNYARD_LOG_MAX_BACKLOG", "500")
    monkeypatch.setenv("RUNYARD_LOG_BATCH_SIZE", "100")  # a full batch wakes the writer out of its outage backoff
    monkeypatch.setenv("RUNYARD_LOG_FLUSH_INTERVAL", "0.02")
    run = Experiment(workspace, "e").start_logging(outputs=False)
    store = OutageStore(workspace.metadata)
    logger = MetricLogger(store, tmp_path / "spool")
    for i in range(3000):
        logger.log(MetricRecord(run.id, "v", i, i, time.time()))
        if i % 100 == 0:
            time.sleep(0.03)  # let the writer fail and spill while the loop goes on
    assert not logger.flush(1)  # still down: nothing is claimed stored
    assert list((tmp_path / "spool").glob("*.jsonl")), "the backlog went to disk"
    assert len(logger._queue) + len(logger._pending) <= 2 * 500  # memory stays bounded (3000 without spilling)
    store.down = False
    assert logger.flush(10)
    assert run.get_metrics()["v"] == list(range(3000))  # every value once, in order
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    assert "written automatically" in capfd.readouterr().err
