import asyncio

from ingress.waiters import Waiters


async def test_every_waiter_of_a_run_is_woken_with_its_status() -> None:
    waiters = Waiters()
    a, b = waiters.register("run_1"), waiters.register("run_1")
    other = waiters.register("run_2")
    waiters.wake("run_1", "completed")
    assert (await a, await b) == ("completed", "completed")
    assert not other.done()
    assert len(waiters) == 1


async def test_a_discarded_waiter_leaves_nothing_behind() -> None:
    waiters = Waiters()
    future = waiters.register("run_1")
    waiters.discard("run_1", future)
    assert len(waiters) == 0
    waiters.wake("run_1", "completed")
    assert not future.done()


async def test_waking_a_run_nobody_waits_for_is_harmless() -> None:
    waiters = Waiters()
    waiters.wake("run_x", "failed")
    await asyncio.sleep(0)
    assert len(waiters) == 0
