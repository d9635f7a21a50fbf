"""mxflip's network code, one home per protocol: :mod:`mxflip.net.lookup` (the readiness
checks' recursive lookups, written and read by :mod:`mxflip.net.dnswire`),
:mod:`mxflip.net.smtp` (the one SMTP client: the probe's handshakes, the canary's
submissions) and :mod:`mxflip.net.https` (the MTA-STS policy fetch). Every one resolves
through ``[probe] resolvers`` and ``connect``, never the system resolver behind
mxflip's back.
"""
