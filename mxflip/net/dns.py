"""The one DNS client: bounded, retried, and honest about slow versus unreachable servers.

Every question status, verification, the CNAME check, the readiness lookups
(:mod:`mxflip.net.lookup`) and the RFC 2136 adapter's reads ask goes through a
:class:`DNSClient`, as a dnspython message (:meth:`DNSClient.ask`: the adapter's signed
reads) or, for the rest, thousands per command, in the small wire format of
:mod:`mxflip.net.dnswire` (:meth:`DNSClient.ask_wire`: dnspython's message objects cost
about 0.5 ms of CPU per lookup more, ``bench/bench_check.py --dns dnspython``; status at
5,000 domains spent half its CPU in them, ``bench/bench_status.py``):

* **Bounded in flight**, overall and per server. Firing thousands of questions at once
  makes the kernel drop answers (receive buffers overflow) and real authoritative servers
  with response-rate limiting drop far more; each dropped answer looked like an
  unreachable server.
* **A timed-out question is asked again**, as a fresh message: every try has a new
  random ID (dnspython's from the system's random source, the wire format's from
  :mod:`secrets`) and opens its own socket, so it leaves from a new random source
  port. Try timeouts double within the budget: with 3 s and 3 tries, 0.43 s, 0.86 s and
  1.71 s. Waiting for a free slot does not count against the budget: the timeout
  measures the server, not our queue.
* **Slow is not unreachable.** An answer that needed more than one try is a
  :class:`DNSReply` with ``tries > 1`` (:attr:`DNSReply.slow`); only a server that answered none
  of the tries is :attr:`DNSReply.unreachable`. After ``give_up_after`` questions in a row
  went unanswered the server counts as down and the rest of the batch is not sent to it:
  a dead server must not cost N times the budget.

One client serves one batch (one event loop); build a new one for the next.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from mxflip.hostport import HostPort
from mxflip.net.dnswire import Question, Response, WireError, tcp_exchange, udp_exchange

_M = TypeVar("_M")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How many questions may be in flight, and how often one is asked."""

    #: Questions awaiting an answer at once, over all servers.
    in_flight: int = 128
    #: Questions awaiting an answer at once from one server address.
    per_server: int = 32
    #: Tries per question (the first, plus retries after a timeout).
    tries: int = 3
    #: Questions in a row a server left unanswered before the rest are not sent to it.
    give_up_after: int = 16


@dataclass(frozen=True)
class Reply(Generic[_M]):
    """The outcome of one question to one server address."""

    response: _M | None
    #: Why there is no usable response; None when there is one.
    error: str | None = None
    tries: int = 1
    #: Seconds from the first try to the answer (or to giving up).
    seconds: float = 0.0
    #: No try was answered at all (timeouts, a refused port): the server is unreachable.
    unreachable: bool = False
    #: The exception behind ``error``, for callers that translate it (TSIG failures).
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def slow(self) -> bool:
        """Answered, but only after a retry."""
        return self.response is not None and self.tries > 1


#: A reply as dnspython reads it (:meth:`DNSClient.ask`).
DNSReply = Reply[dns.message.Message]
#: A reply in the readiness lookups' wire format (:meth:`DNSClient.ask_wire`).
WireReply = Reply[Response]

MessageFactory = Callable[[], dns.message.Message]


def make_question(
    name: str, rdtype: dns.rdatatype.RdataType | str, *, recursive: bool
) -> MessageFactory:
    """A factory of fresh queries for ``name``/``rdtype`` (RD set only when ``recursive``)."""

    def make() -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        if not recursive:
            query.flags &= ~dns.flags.RD
        return query

    return make


class DNSClient:
    """Asks DNS questions within :class:`Limits`; ``timeout`` is the budget of one question
    at one server address, over all its tries."""

    def __init__(
        self, timeout: float, limits: Limits | None = None, *, caller_bounds: bool = False
    ) -> None:
        self.timeout = timeout
        self.limits = limits or Limits()
        #: The caller never has more than ``limits.in_flight`` questions (and so never
        #: more than ``limits.per_server`` for a server) in flight, as the readiness
        #: lookups' limiter does: the client's own semaphores are skipped (two per
        #: question, thousands of questions a check).
        self._caller_bounds = caller_bounds
        self._all = asyncio.Semaphore(self.limits.in_flight)
        self._per_server: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._unanswered: dict[tuple[str, int], int] = {}
        self._names: dict[tuple[str, int], asyncio.Task[list[str]]] = {}
        self._timeouts: tuple[tuple[float, int] | None, list[float]] = (None, [])

    def try_timeouts(self) -> list[float]:
        """Each try's timeout: doubling, summing to :attr:`timeout`."""
        key = (self.timeout, self.limits.tries)
        if self._timeouts[0] != key:  # worked out once, not per question
            tries = max(1, self.limits.tries)
            unit = self.timeout / (2**tries - 1)
            self._timeouts = (key, [unit * 2**i for i in range(tries)])
        return list(self._timeouts[1])

    async def addresses(self, server: HostPort) -> list[str]:
        """Every address of ``server`` (itself when it is an address); looked up once per
        client. Raises OSError, or TimeoutError after the budget."""
        if server.is_ip:
            return [server.host]
        key = (server.host, server.port)
        task = self._names.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(server))
            self._names[key] = task
        return await asyncio.shield(task)

    async def _lookup(self, server: HostPort) -> list[str]:
        loop = asyncio.get_running_loop()
        infos = await asyncio.wait_for(
            loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM), self.timeout
        )
        return sorted({str(info[4][0]) for info in infos})

    async def ask(self, make: MessageFactory, address: str, port: int = 53) -> DNSReply:
        """Ask ``address``: each try sends a fresh message from ``make`` (UDP, TCP when the
        answer is truncated)."""

        async def one_try(timeout: float) -> dns.message.Message:
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    make(), address, timeout=timeout, port=port
                )
            except dns.exception.Timeout:
                raise TimeoutError from None
            return response

        reply = await self._ask(one_try, address, port)
        if _log.isEnabledFor(logging.DEBUG):
            question = make().question  # a fresh message: only built when -vv asks for it
            response = reply.response
            _log_reply(
                address,
                port,
                reply,
                question[0].name.to_text() if question else None,
                dns.rdatatype.to_text(question[0].rdtype) if question else None,
                None if response is None else dns.rcode.to_text(response.rcode()),
            )
        return reply

    async def ask_wire(
        self, question: Question, address: str, port: int = 53, *, strict: bool = False
    ) -> WireReply:
        """Ask ``address`` a question in the small wire format: each try from a socket of
        its own with a random ID (UDP, TCP when the answer is truncated). ``strict``: an
        unreadable answer ends the question at once (see
        :func:`~mxflip.net.dnswire.udp_exchange`)."""

        async def one_try(timeout: float) -> Response:
            response = await udp_exchange(question, address, port, timeout, strict=strict)
            if response.truncated:
                response = await tcp_exchange(question, address, port, timeout)
            return response

        reply = await self._ask(one_try, address, port)
        if _log.isEnabledFor(logging.DEBUG):
            response = reply.response
            _log_reply(
                address,
                port,
                reply,
                question.text,
                question.type_text,
                None
                if response is None
                else dns.rcode.to_text(dns.rcode.Rcode.make(response.rcode)),
            )
        return reply

    async def _ask(
        self, one_try: Callable[[float], Awaitable[_M]], address: str, port: int
    ) -> Reply[_M]:
        key = (address, port)
        if self._caller_bounds:
            return await self._unless_given_up(one_try, key)
        server = self._per_server.get(key)
        if server is None:
            server = self._per_server[key] = asyncio.Semaphore(self.limits.per_server)
        # The server's slot first: a question waiting for a busy server holds no overall slot.
        async with server, self._all:
            return await self._unless_given_up(one_try, key)

    async def _unless_given_up(
        self, one_try: Callable[[float], Awaitable[_M]], key: tuple[str, int]
    ) -> Reply[_M]:
        given_up = self._unanswered.get(key, 0)
        if given_up >= self.limits.give_up_after:
            return Reply(
                None,
                error=f"not asked: {given_up} questions in a row went unanswered",
                tries=0,
                unreachable=True,
            )
        return await self._tries(one_try, key)

    async def _tries(
        self, one_try: Callable[[float], Awaitable[_M]], key: tuple[str, int]
    ) -> Reply[_M]:
        started = time.monotonic()
        timeouts = self.try_timeouts()
        for number, timeout in enumerate(timeouts, start=1):
            try:
                response = await one_try(timeout)
            except TimeoutError:
                continue
            except OSError as exc:  # a refused port (ICMP) or no route: no use asking again
                self._unanswered[key] = self._unanswered.get(key, 0) + 1
                return Reply(
                    None,
                    error=exc.strerror or str(exc),
                    tries=number,
                    seconds=time.monotonic() - started,
                    unreachable=True,
                    exception=exc,
                )
            except (dns.exception.DNSException, WireError) as exc:
                self._unanswered[key] = 0
                return Reply(
                    None,
                    error=f"bad answer: {exc}",
                    tries=number,
                    seconds=time.monotonic() - started,
                    exception=exc,
                )
            self._unanswered[key] = 0
            return Reply(response, tries=number, seconds=time.monotonic() - started)
        self._unanswered[key] = self._unanswered.get(key, 0) + 1
        return Reply(
            None,
            error=f"no answer to {len(timeouts)} tries within {self.timeout:g} s",
            tries=len(timeouts),
            seconds=time.monotonic() - started,
            unreachable=True,
        )


def _log_reply(
    address: str,
    port: int,
    reply: Reply[Any],
    qname: str | None,
    rdtype: str | None,
    rcode: str | None,
) -> None:
    """One DEBUG line per question: server, name, type, rcode (or error), tries, ms."""
    fields: dict[str, object] = {"server": f"{address}#{port}"}
    if qname is not None:
        fields.update(qname=qname, rdtype=rdtype)
    if rcode is not None:
        fields["rcode"] = rcode
    else:
        fields["error"] = reply.error
    fields.update(tries=reply.tries, ms=round(reply.seconds * 1000, 1))
    _log.debug("dns query", extra=fields)
