"""The local queue: at most `capacity` slots held, waiting runs served in submission order."""
import os
import threading
import time

from runyard.runtime.local_queue import LocalQueue


def test_capacity_and_order(tmp_path):
    queue = LocalQueue(tmp_path, "cpu", capacity=1)
    tickets = [queue.enqueue(f"run{i}", i) for i in range(3)]
    started: list[str] = []
    slots = {}

    def runner(i):
        slots[i] = queue.acquire(tickets[i], stop=lambda: False, poll=0.01)
        started.append(f"run{i}")

    threads = [threading.Thread(target=runner, args=(i,)) for i in (2, 1, 0)]  # started in reverse order
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert started == ["run0"] and queue.running() == 1
    assert queue.position(tickets[2].name) == 1
    os.close(slots[0])
    time.sleep(0.3)
    assert started == ["run0", "run1"]
    os.close(slots[1])
    for t in threads:
        t.join(2)
    assert started == ["run0", "run1", "run2"]
    os.close(slots[2])
    assert queue.running() == 0


def test_stop_while_waiting_gives_up_the_place(tmp_path):
    queue = LocalQueue(tmp_path, "cpu", capacity=1)
    first = queue.acquire(queue.enqueue("a", 1), stop=lambda: False)
    ticket = queue.enqueue("b", 2)
    assert queue.acquire(ticket, stop=lambda: True) is None
    assert not ticket.exists()
    os.close(first)


def test_abandoned_tickets_lose_their_place(tmp_path, monkeypatch):
    import runyard.runtime.local_queue as lq

    queue = LocalQueue(tmp_path, "cpu", capacity=1)
    dead = queue.enqueue("dead", 1)  # its supervisor never started
    monkeypatch.setattr(lq, "_UNCLAIMED_TICKET_SECONDS", 0.0)
    slot = queue.acquire(queue.enqueue("live", 2), stop=lambda: False)
    assert slot is not None and not dead.exists()
    os.close(slot)
