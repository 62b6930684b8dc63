"""The work queue: de-duplication, exclusion while processing, delays, back-off, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from kinns.client.workqueue import ShutDown, WorkQueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_dedup_and_fifo() -> None:
    async def go() -> None:
        q = WorkQueue()
        for k in ("a", "b", "a", "c", "b"):
            q.add(k)
        assert len(q) == 3
        assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    run(go())


def test_key_in_processing_is_not_handed_out_twice() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add("a")
        k = await q.get()
        q.add("a")  # changed while we work on it
        assert len(q) == 0  # held back, not handed to a second worker
        getter = asyncio.create_task(q.get())
        await asyncio.sleep(0.01)
        assert not getter.done()
        q.done(k)
        assert await asyncio.wait_for(getter, 1) == "a"
        q.done("a")
        assert len(q) == 0
    run(go())


def test_done_without_re_add_drops_key() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add("a")
        q.done(await q.get())
        assert len(q) == 0 and not q.is_processing("a")
    run(go())


def test_add_after_keeps_earliest() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add_after("a", 0.2)
        q.add_after("a", 0.02)
        q.add_after("a", 5)
        assert len(q) == 0
        assert await asyncio.wait_for(q.get(), 0.15) == "a"
        assert q.pending() == 0
    run(go())


def test_rate_limited_backoff_grows_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=0.05)
    assert [q.when("k") for _ in range(5)] == [0.01, 0.02, 0.04, 0.05, 0.05]
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0 and q.when("k") == 0.01


def test_add_rate_limited_delivers_later() -> None:
    async def go() -> None:
        q = WorkQueue(base_delay=0.03)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        q.add_rate_limited("x")
        assert await q.get() == "x"
        assert loop.time() - t0 >= 0.025
    run(go())


def test_many_workers_each_key_once() -> None:
    async def go() -> None:
        q = WorkQueue()
        seen: list[str] = []
        active: set[str] = set()

        async def worker() -> None:
            while True:
                try:
                    k = await q.get()
                except ShutDown:
                    return
                assert k not in active
                active.add(k)
                await asyncio.sleep(0.001)
                seen.append(k)
                active.discard(k)
                q.done(k)

        tasks = [asyncio.create_task(worker()) for _ in range(4)]
        for i in range(50):
            q.add(f"k{i % 10}")
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        q.shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        assert set(seen) == {f"k{i}" for i in range(10)}
    run(go())


def test_shutdown_drains_then_raises() -> None:
    async def go() -> None:
        q = WorkQueue()
        q.add("a")
        q.shutdown()
        q.add("b")  # refused
        assert await q.get() == "a"
        with pytest.raises(ShutDown):
            await q.get()
        waiter = WorkQueue()
        t = asyncio.create_task(waiter.get())
        await asyncio.sleep(0)
        waiter.shutdown()
        with pytest.raises(ShutDown):
            await asyncio.wait_for(t, 1)
    run(go())


def test_cancelled_getter_does_not_lose_wakeup() -> None:
    async def go() -> None:
        q = WorkQueue()
        g1 = asyncio.create_task(q.get())
        g2 = asyncio.create_task(q.get())
        await asyncio.sleep(0)
        q.add("a")      # wakes g1 ...
        g1.cancel()     # ... which is cancelled before it runs
        assert await asyncio.wait_for(g2, 1) == "a"
    run(go())
