"""mxflip's network code, one home per protocol: :mod:`mxflip.net.dns` is the one DNS
client (status, verification, the CNAME check, the readiness lookups of
:mod:`mxflip.net.lookup` and the RFC 2136 adapter's reads ask through it; the readiness
questions are written and read by :mod:`mxflip.net.dnswire`), :mod:`mxflip.net.smtp` the
one SMTP client (the probe's handshakes, the canary's submissions) and
:mod:`mxflip.net.https` the MTA-STS policy fetch. Every one resolves through
``[probe] resolvers`` and ``connect``, never the system resolver behind mxflip's back.
"""
