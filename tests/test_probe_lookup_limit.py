"""The lookup limiter: a bounded number in flight, address lookups served first."""

from __future__ import annotations

import asyncio

from mxflip.net.lookup import _Limiter


def test_urgent_waiters_go_first_and_the_bound_holds() -> None:
    async def scenario() -> list[str]:
        limiter = _Limiter(1)
        order: list[str] = []
        release = asyncio.Event()

        async def ask(name: str, urgent: bool) -> None:
            async with limiter.slot(urgent):
                order.append(name)
                if name == "first":
                    await release.wait()
                assert limiter.free == 0  # never more than one in flight

        first = asyncio.create_task(ask("first", False))
        await asyncio.sleep(0)
        others = [
            asyncio.create_task(ask(name, urgent))
            for name, urgent in [("tlsa", False), ("a", True), ("txt", False), ("aaaa", True)]
        ]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *others)
        assert limiter.free == 1
        return order

    assert asyncio.run(scenario()) == ["first", "a", "aaaa", "tlsa", "txt"]


def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    async def scenario() -> int:
        limiter = _Limiter(1)
        hold = asyncio.Event()

        async def ask(urgent: bool) -> None:
            async with limiter.slot(urgent):
                await hold.wait()

        holder = asyncio.create_task(ask(False))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(ask(True))
        await asyncio.sleep(0)
        waiter.cancel()
        hold.set()
        await holder
        await asyncio.gather(waiter, return_exceptions=True)
        async with limiter.slot(False):
            pass
        return limiter.free

    assert asyncio.run(scenario()) == 1
