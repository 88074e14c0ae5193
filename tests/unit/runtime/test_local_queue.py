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


def test_the_runs_next_in_line_look_often_the_rest_rarely(tmp_path, monkeypatch):
    """A slot freed is taken within 10 ms by a run next in line (a sweep of short trials waits for slots all the
    time); runs further back poll at the caller's pace, so a long queue costs little."""
    import runyard.runtime.local_queue as lq

    queue = LocalQueue(tmp_path, "cpu", capacity=2)
    held = [queue.acquire(queue.enqueue(f"r{i}", i), stop=lambda: False) for i in range(2)]
    waits: dict[str, list[float]] = {"next": [], "behind": []}
    for name, position in (("next", 10), ("behind", 12)):
        ahead = [queue.enqueue(f"a{name}{i}", 5 + i) for i in range(position - 10)]  # tickets ahead of this one
        ticket = queue.enqueue(name, position)
        calls = iter(range(3))
        monkeypatch.setattr(lq.time, "sleep", waits[name].append)
        assert queue.acquire(ticket, stop=lambda: next(calls, None) is None, poll=0.1) is None
        for other in ahead:
            other.unlink()
    assert waits["next"] == [0.01] * 3 and waits["behind"] == [0.1] * 3
    for fd in held:
        os.close(fd)
