"""mxflip's network code. :mod:`mxflip.net.dns` is the one DNS client: status,
verification, the CNAME check and the RFC 2136 adapter's reads ask through it.

(The readiness checks' own resolver, ``mxflip.lookup``, is still separate; it moves here
next.)
"""
