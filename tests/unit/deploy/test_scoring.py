"""The scoring server's call policy: proven-fast requests on the event loop, the rest (and everything after one slow
call on the loop) in worker threads with the timeout."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from runyard.deploy.server import Scoring


def test_fast_calls_move_onto_the_loop_and_a_slow_one_sends_them_back_for_good():
    where: list[str] = []
    delay = {"s": 0.0}

    def run(raw: str):
        where.append("thread" if threading.current_thread().name.startswith("runyard-score") else "loop")
        time.sleep(delay["s"])
        return len(raw)

    async def scenario():
        scoring = Scoring(run, timeout=5)
        assert await scoring.call("x" * 10) == 10  # nothing proven yet: a thread
        await scoring.call("x" * 10)  # proven fast at this size: the loop
        await scoring.call("x" * 5)  # smaller: the loop
        await scoring.call("x" * 50)  # larger than any proven: a thread, which proves it
        await scoring.call("x" * 50)
        delay["s"] = Scoring.SLOW * 2
        await scoring.call("x" * 10)  # slow on the loop: it still answers, and the policy flips
        delay["s"] = 0.0
        await scoring.call("x" * 10)
        await scoring.call("x" * 10)
        return scoring

    scoring = asyncio.run(scenario())
    assert where == ["thread", "loop", "loop", "thread", "loop", "loop", "thread", "thread"]
    assert not scoring.inline


def test_a_scoring_script_always_runs_in_a_thread_under_the_timeout():
    where: list[str] = []

    def run(raw: str):
        where.append(threading.current_thread().name.startswith("runyard-score"))
        time.sleep(0.5 if raw == "slow" else 0)

    async def scenario():
        scoring = Scoring(run, timeout=0.1, may_inline=False)
        for _ in range(3):
            await scoring.call("fast")
        with pytest.raises(asyncio.TimeoutError):  # the 504
            await scoring.call("slow")

    asyncio.run(scenario())
    assert where == [True, True, True, True]
