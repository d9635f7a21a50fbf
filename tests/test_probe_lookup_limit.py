"""The lookup limiter: a bounded number in flight, address lookups served first."""

from __future__ import annotations

import asyncio
import contextlib

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


def test_a_hosts_a_and_aaaa_leave_together() -> None:
    """Urgent waiters of a lower group go first: a host's A and AAAA (one group) are
    not queued behind every other host's A, so its handshake can start."""

    async def scenario() -> list[str]:
        limiter = _Limiter(1)
        order: list[str] = []
        release = asyncio.Event()

        async def ask(name: str, urgent: bool, group: int) -> None:
            async with limiter.slot(urgent, group):
                order.append(name)
                if name == "first":
                    await release.wait()

        first = asyncio.create_task(ask("first", False, 0))
        await asyncio.sleep(0)
        # the order the probe's host pipelines queue them in: every A, then every AAAA
        asked = [("a1", 1), ("a2", 2), ("a3", 3), ("aaaa1", 1), ("aaaa2", 2), ("aaaa3", 3)]
        others = [asyncio.create_task(ask("tlsa", False, 0))]
        others += [asyncio.create_task(ask(name, True, group)) for name, group in asked]
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *others)
        assert limiter.free == 1
        return order

    assert asyncio.run(scenario()) == ["first", "a1", "aaaa1", "a2", "aaaa2", "a3", "aaaa3", "tlsa"]


def test_lookups_of_addresses_are_grouped_per_host() -> None:
    """Lookup.addresses asks A and AAAA of one host in one group, each host its own."""
    from mxflip.errors import DNSQueryError
    from mxflip.hostport import HostPort
    from mxflip.net.lookup import Lookup

    seen: list[tuple[str, str, bool, int]] = []

    class Recording(Lookup):
        async def _exchange(  # type: ignore[override]
            self, name: str, rdtype: str, urgent: bool = False, group: int = 0
        ) -> object:
            seen.append((name, rdtype, urgent, group))
            await asyncio.sleep(0)  # the twin query starts meanwhile
            raise DNSQueryError("not asked: only the grouping is checked")

    lookup = Recording([HostPort("127.0.0.1", 9)])

    async def scenario() -> None:
        for host in ("mx1.test.", "mx2.test."):
            with contextlib.suppress(DNSQueryError):
                await lookup.addresses(host)

    asyncio.run(scenario())
    groups = {(name, rdtype): (urgent, group) for name, rdtype, urgent, group in seen}
    assert groups[("mx1.test.", "A")] == groups[("mx1.test.", "AAAA")]
    assert groups[("mx2.test.", "A")] == groups[("mx2.test.", "AAAA")]
    assert groups[("mx1.test.", "A")] != groups[("mx2.test.", "A")]
    assert all(urgent and group > 0 for urgent, group in groups.values())


def test_a_check_asks_for_host_addresses_before_mx_sets() -> None:
    """For a configured profile the hosts are known: their address lookups (which the
    handshakes wait on) start before the MX, MTA-STS and TLSA lookups (only judged)."""
    from mxflip.config import Config, DomainConfig, ProbeConfig
    from mxflip.hostport import HostPort
    from mxflip.net.lookup import HostAddresses, Lookup, TLSAAnswer
    from mxflip.readiness import check_domains
    from mxflip.records import MX, RRset

    asked: list[str] = []

    class Recording(Lookup):
        async def addresses(self, host: str) -> HostAddresses:
            asked.append("addresses")
            return HostAddresses(host, ())

        async def mx(self, domain: str, *, urgent: bool = False) -> RRset | None:
            asked.append("mx")
            return None

        async def txt(self, name: str) -> list[str]:
            asked.append("txt")
            return []

        async def tlsa(self, host: str, port: int = 25) -> TLSAAnswer:
            asked.append("tlsa")
            return TLSAAnswer((), True)

    domains = {
        f"d{i}.test.": DomainConfig(
            name=f"d{i}.test.",
            provider="p",
            zone="test.",
            primary=frozenset({MX(10, f"mx.d{i}.test.")}),
            backup=frozenset({MX(10, f"backup.d{i}.test."), MX(20, f"backup2.d{i}.test.")}),
        )
        for i in range(3)
    }
    probe = ProbeConfig(helo="probe.test", resolvers=(HostPort("127.0.0.1", 9),))
    config = Config(path=None, providers={}, domains=domains, probe=probe)
    lookup = Recording(probe.resolvers)
    results = asyncio.run(check_domains(config, list(domains.values()), "backup", lookup=lookup))
    assert len(results) == 3
    assert asked[:6] == ["addresses"] * 6
    assert sorted(asked[6:]) == ["mx"] * 3 + ["tlsa"] * 6 + ["txt"] * 3
