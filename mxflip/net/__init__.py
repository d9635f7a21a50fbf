"""mxflip's network code: :mod:`mxflip.net.dns` is the one DNS client (status,
verification, the CNAME check and the RFC 2136 adapter's reads ask through it);
:mod:`mxflip.net.https` fetches MTA-STS policies with the probe's resolvers and
``connect`` rules. (The readiness checks' resolver, ``mxflip.lookup``, still has its own
wire code; it moves to :mod:`mxflip.net.dns` next.)
"""
