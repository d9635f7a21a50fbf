"""Just enough DNS wire format for readiness lookups: one question out, its answer in,
over UDP (:func:`udp_exchange`) or TCP (:func:`tcp_exchange`).

dnspython builds and parses whole messages into Name, Rdata and Rdataset objects, down to
the SOA of every negative answer. A check of hundreds of domains asks thousands of
questions, and that work was most of the check's CPU (``bench/bench_check.py``: about
0.8 ms per lookup, more than the SMTP handshakes together). Readiness needs only the
header, the question (to match a reply to its query) and the answer section, so those are
read here directly with ``struct``; the authority section is skipped and the additional
section is read only for the OPT record's extended RCODE. Names are compared as tuples of
lower-cased labels; dnspython still turns names into text and validates query names.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import select
import socket
import struct
import weakref
from collections import deque
from dataclasses import dataclass

import dns.name
import dns.rdatatype

#: A name as its labels, lower-cased, without the root label.
Labels = tuple[bytes, ...]

CNAME = 5
MX = 15
OPT = 41
CLASS_IN = 1
_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
#: Authentic Data: set in a query it asks a validating resolver to say whether the answer
#: was DNSSEC-validated (RFC 6840 §5.7), without the cost of DO and signatures.
_AD = 0x0020
_MAX_CHAIN = 16
#: EDNS0 UDP payload size we advertise (the DNS flag day 2020 value).
_PAYLOAD = 1232

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_TYPE_CLASS = struct.Struct("!HH")
_U16 = struct.Struct("!H")
#: An OPT pseudo-record: root owner, type OPT, class = payload size, no flags, no options.
_OPT_RR = b"\x00" + _RR.pack(OPT, _PAYLOAD, 0, 0)


_HOSTNAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.\Z")
_TYPES = {"A": 1, "CNAME": 5, "AAAA": 28, "MX": 15, "TXT": 16, "TLSA": 52}


class WireError(ValueError):
    """The bytes are not a DNS message this reader understands."""


@dataclass(frozen=True, slots=True)
class Question:
    """A query name (text, wire form and labels) and type, ready to be sent many times."""

    text: str
    wire: bytes
    labels: Labels
    rdtype: int
    type_text: str
    #: RD set (a resolver's question); clear for an authoritative server's own data.
    recursive: bool = True

    @classmethod
    def make(cls, name: str, rdtype: str, *, recursive: bool = True) -> Question:
        """The question for ``name`` (absolute); raises ``dns.exception.DNSException`` for
        a name that is not valid."""
        # Host names (letters, digits, hyphen, underscore) are encoded here: dnspython's
        # Name costs ~15 µs, a tenth of a whole lookup. Anything else (escapes, IDNA) and
        # every over-long label or name goes through dnspython, which says what is wrong.
        raw = name.encode("ascii") if _HOSTNAME.match(name) else b""
        labels = tuple(raw.lower().split(b".")[:-1]) if raw else ()
        if labels and len(raw) < 254 and all(len(label) < 64 for label in labels):
            wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
        else:
            parsed = dns.name.from_text(name)
            labels = tuple(label.lower() for label in parsed.labels[:-1])
            wire = parsed.to_wire() or b""  # None only when writing to a file
        code = _TYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
        return cls(name, wire, labels, code, rdtype, recursive)

    def to_wire(self, qid: int) -> bytes:
        """A recursive query with EDNS0, as ``dns.message.make_query(use_edns=0)`` makes,
        with the AD bit set (the answer says whether a validating resolver validated it);
        a non-recursive one has no flags set."""
        return (
            _HEADER.pack(qid, _RD | _AD if self.recursive else 0, 1, 0, 0, 1)
            + self.wire
            + _TYPE_CLASS.pack(self.rdtype, CLASS_IN)
            + _OPT_RR
        )


@dataclass(frozen=True, slots=True)
class Record:
    """One answer record; ``target`` is the name inside a CNAME or MX, decompressed."""

    owner: Labels
    rdtype: int
    ttl: int
    rdata: bytes
    target: Labels = ()


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    flags: int
    rcode: int
    question: tuple[Labels, int, int] | None
    answer: tuple[Record, ...]

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)

    @property
    def authoritative(self) -> bool:
        """The server answered from its own zone (the AA bit)."""
        return bool(self.flags & _AA)

    def mx(self, question: Question) -> tuple[int, list[tuple[int, Labels]]] | None:
        """The MX RRset owned by the query name itself (no CNAME followed: an
        authoritative server's own data), as (TTL, [(preference, exchange)]); the TTL is
        the lowest of its records', as dnspython merges them. None when there is none."""
        found = [r for r in self.answer if r.owner == question.labels and r.rdtype == MX]
        if not found:
            return None
        return min(r.ttl for r in found), [(_U16.unpack_from(r.rdata)[0], r.target) for r in found]

    @property
    def authenticated(self) -> bool:
        """The resolver says it validated the answer with DNSSEC (the AD bit)."""
        return bool(self.flags & _AD)

    def answers(self, question: Question) -> bool:
        """Is this the reply to ``question``? As dnspython's ``is_response``: a reply,
        and the same question, except that an error reply may leave the question out."""
        if not self.flags & _QR or self.flags & 0x7800:  # not a reply, or not opcode QUERY
            return False
        if self.question is None:
            return self.rcode in (1, 2, 4, 5)  # FORMERR, SERVFAIL, NOTIMP, REFUSED
        return self.question == (question.labels, question.rdtype, CLASS_IN)

    def chain(self, question: Question) -> tuple[Labels, list[Record]]:
        """Follow CNAMEs in the answer from the query name, as dnspython's
        ``resolve_chaining``: (the canonical name, its records of the asked type)."""
        name = question.labels
        for _ in range(_MAX_CHAIN):
            found = [r for r in self.answer if r.owner == name and r.rdtype == question.rdtype]
            if found:
                return name, found
            cname = next((r for r in self.answer if r.owner == name and r.rdtype == CNAME), None)
            if cname is None:
                return name, []
            name = cname.target
        raise WireError("the CNAME chain is too long")


def to_text(labels: Labels) -> str:
    """An absolute name in text form (dnspython escapes unusual characters)."""
    return dns.name.Name((*labels, b"")).to_text()


def _name(data: bytes, pos: int, limit: int = -1) -> tuple[Labels, int]:
    """The name at ``pos`` (following compression pointers) and the offset after it;
    its uncompressed part must end by ``limit`` (the end of its record) when given."""
    labels: list[bytes] = []
    end = -1
    total = 0
    for _ in range(128):  # a bound on pointers, so a loop of them cannot hang us
        if pos >= len(data):
            raise WireError("truncated name")
        length = data[pos]
        if length == 0:
            after = pos + 1 if end < 0 else end
            if 0 <= limit < after:
                raise WireError("name runs past its record")
            return tuple(labels), after
        if length & 0xC0 == 0xC0:
            if pos + 2 > len(data):
                raise WireError("truncated name")
            if end < 0:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length & 0xC0:
            raise WireError("unknown label type")
        total += length + 1
        if pos + 1 + length > len(data) or total > 255:
            raise WireError("bad label")
        labels.append(data[pos + 1 : pos + 1 + length].lower())
        pos += 1 + length
    raise WireError("too many compression pointers")


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise WireError("truncated name")
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def parse(data: bytes) -> Response:
    """Read a reply's header, question and answer section (and the EDNS extended RCODE).
    Raises :class:`WireError` for anything malformed."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    pos = 12
    question = None
    if qdcount > 1:
        raise WireError("more than one question")
    if qdcount == 1:
        qname, pos = _name(data, pos)
        if pos + 4 > len(data):
            raise WireError("truncated question")
        qtype, qclass = _TYPE_CLASS.unpack_from(data, pos)
        pos += 4
        question = (qname, qtype, qclass)
    if flags & _TC:
        # a truncated reply is asked again over TCP; its sections may be cut off mid-record
        ancount = nscount = arcount = 0
    answer = []
    rcode = flags & 0x000F
    for index in range(ancount + nscount + arcount):
        in_answer = index < ancount
        if in_answer:
            owner, pos = _name(data, pos)
        else:
            owner, pos = (), _skip_name(data, pos)
        if pos + 10 > len(data):
            raise WireError("truncated record")
        rdtype, rdclass, ttl, rdlength = _RR.unpack_from(data, pos)
        pos += 10
        end = pos + rdlength
        if end > len(data):
            raise WireError("record data runs past the end")
        if in_answer:
            if rdclass == CLASS_IN:
                target: Labels = ()
                # the name must fill the rest of the record exactly, as dnspython insists
                if rdtype in (CNAME, MX):
                    start = pos if rdtype == CNAME else pos + 2
                    if start >= end:
                        raise WireError("record data too short")
                    target, after = _name(data, start, end)
                    if after != end:
                        raise WireError("bad record data length")
                answer.append(Record(owner, rdtype, ttl, data[pos:end], target))
        elif rdtype == OPT and index >= ancount + nscount:
            rcode |= (ttl >> 24) << 4  # the upper eight bits of a 12-bit RCODE
        pos = end
    return Response(qid, flags, rcode, question, tuple(answer))


# ----------------------------------------------------------------------- exchanges

#: Made non-blocking at creation where the system can (Linux): one system call less a query.
_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)
#: Datagrams read per wake-up at most (the rest wait for the next one): a flood of stray
#: datagrams cannot hold the event loop.
_MAX_DATAGRAMS = 64


async def udp_exchange(
    question: Question, host: str, port: int, timeout: float, *, strict: bool = False
) -> Response:
    """One try over UDP from a socket of its own with a cryptographically random ID.
    Raises TimeoutError when no matching answer came within ``timeout``.

    ``strict`` (status and verification, as dnspython did for them): a datagram with our
    ID that cannot be read raises WireError ("bad answer"), where readiness treats it
    like silence.

    The socket is connected to the server, so the kernel drops datagrams from anywhere
    else; with a fresh source port and a random ID per query, a spoofed answer has to
    guess both (32 bits), not just the ID of a socket that lives for the whole check. The
    sockets are watched by the event loop's :class:`_Watcher`, not one by one: thousands
    of lookups a check, and a datagram transport per query costs ~45 µs of CPU more, a
    reader callback and a timer per query ~20 µs more (65 instead of 45 µs a query)."""
    loop = asyncio.get_running_loop()
    watcher = _WATCHERS.get(loop)
    if watcher is None:
        watcher = _WATCHERS[loop] = _Watcher(loop)
    qid = secrets.randbits(16)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | _NONBLOCK)
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        sock.connect((host, port))
        query = _Query(sock, question, qid, loop.create_future(), strict)
        watcher.watch(query, timeout)
        try:
            sock.send(question.to_wire(qid))
            return await query.future
        finally:
            watcher.forget(query)
    finally:
        sock.close()


class _Query:
    """One UDP try in flight: its socket, what answers it, and when it gives up."""

    __slots__ = ("deadline", "future", "qid", "question", "sock", "strict")

    def __init__(
        self,
        sock: socket.socket,
        question: Question,
        qid: int,
        future: asyncio.Future[Response],
        strict: bool,
    ) -> None:
        self.sock = sock
        self.question = question
        self.qid = qid
        self.future = future
        self.strict = strict
        self.deadline = 0.0


class _Watcher:
    """Watches every UDP query socket of one event loop, and their timeouts.

    Where the system has ``epoll`` (Linux), the query sockets go into an epoll set of our
    own whose one descriptor the loop watches: a query costs one ``epoll_ctl`` and no
    asyncio handles (closing the socket drops it from the set). Elsewhere each socket gets a
    reader callback. Timeouts: one timer for all queries, armed for the earliest deadline;
    the queries of one timeout wait in order in a queue of their own (deadlines only grow
    in it), so a query costs an append instead of a timer handle scheduled and cancelled.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # No reference to the loop is kept once nothing is in flight (the loop owns its
        # watcher through its reader callback; _WATCHERS is weak).
        self._waiting: dict[int, _Query] = {}
        self._queues: dict[float, deque[_Query]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        if self._epoll is not None:
            # (the set closes itself when the watcher goes, with its loop)
            loop.add_reader(self._epoll.fileno(), self._ready)

    def watch(self, query: _Query, timeout: float) -> None:
        loop = query.future.get_loop()
        fileno = query.sock.fileno()
        self._waiting[fileno] = query
        if self._epoll is not None:
            self._epoll.register(fileno, select.EPOLLIN)
        else:
            loop.add_reader(fileno, _receive, query)
        query.deadline = deadline = loop.time() + timeout
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(query)
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)

    def forget(self, query: _Query) -> None:
        """The query is over (answered, timed out or cancelled): stop watching its socket
        (its place in the timeout queue is dropped when the queue gets there)."""
        if not query.future.done():
            query.future.cancel()  # never sent (send failed): nothing is to expire it
        fileno = query.sock.fileno()
        if self._waiting.pop(fileno, None) is not None and self._epoll is None:
            query.future.get_loop().remove_reader(fileno)
        if not self._waiting:
            # Nothing in flight: nothing to expire, and no timer or query left holding the
            # loop (the loop owns its watcher; the watcher must not keep a closed loop).
            self._queues.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        # with epoll, closing the socket (the caller does, next) takes it out of the set

    def _ready(self) -> None:
        assert self._epoll is not None
        for fileno, _ in self._epoll.poll(0, _MAX_DATAGRAMS):
            query = self._waiting.get(fileno)
            if query is not None:
                _receive(query)

    def _expire(self) -> None:
        """The earliest deadline has come: fail every query past its deadline, then arm
        the timer for the next deadline still pending."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        earliest: float | None = None
        for timeout, queue in list(self._queues.items()):
            while queue and (queue[0].future.done() or queue[0].deadline <= now):
                query = queue.popleft()
                if not query.future.done():
                    query.future.set_exception(TimeoutError())
            if not queue:
                del self._queues[timeout]
            elif earliest is None or queue[0].deadline < earliest:
                earliest = queue[0].deadline
        if earliest is not None:
            self._timer = loop.call_at(earliest, self._expire)


#: Each running event loop's watcher (dropped with its loop).
_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher] = (
    weakref.WeakKeyDictionary()
)


async def tcp_exchange(question: Question, host: str, port: int, timeout: float) -> Response:
    """One try over TCP (a truncated UDP answer is asked again here); one connection per
    question, a cryptographically random ID."""
    qid = secrets.randbits(16)
    query = question.to_wire(qid)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            response = parse(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            raise OSError("the server closed the TCP connection mid-answer") from None
        finally:
            writer.close()
    if response.id != qid or not response.answers(question):
        raise WireError("the TCP answer does not match the question")
    return response


def _receive(query: _Query) -> None:
    """The socket is readable: take the datagrams waiting; the first that is the reply
    to this query (its ID and its question) answers it. Late, stray or broken ones and
    ICMP errors (a refused port) are dropped: a silent server times out, as before."""
    future, sock, qid = query.future, query.sock, query.qid
    for _ in range(_MAX_DATAGRAMS):
        if future.done():
            return
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:
            # an ICMP error reported on this socket: treated like silence (a refused port
            # times out, as it did through dnspython for status and verification)
            continue
        if len(data) < 12 or int.from_bytes(data[:2], "big") != qid:
            continue
        try:
            response = parse(data)
        except WireError as exc:
            if query.strict:
                future.set_exception(exc)
                return
            continue
        # the ID alone is 16 bits; the question must match too
        if response.answers(query.question):
            future.set_result(response)
