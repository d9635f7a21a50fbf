"""``mxflip watch``: continuous supervision of the configured domains.

Each round gathers signals (DNS at the provider and every nameserver, readiness of the
backup and live sets, canaries through the live path and straight to the backup), feeds
them to a per-domain state machine (:mod:`mxflip.watch.machine`, a pure function of the
signals and an injected clock), and acts on its decisions: alerts through Apprise, a
stored proposal, or a failover through the engine. The watcher decides; the engine acts.

Modules, one job each: ``config`` (the ``[watch]`` table), ``store`` (state that survives
restarts, behind one load/save interface), ``machine`` (states and decisions), ``signals``
(one round's observations), ``rounds`` (the loop, signals, reload), ``actions`` (proposals,
approve, the engine), ``alerts`` (Apprise, heartbeat), ``metrics`` (prometheus-client),
``server`` and ``page`` (``--listen``).

This module imports nothing heavy: the configuration loader imports ``watch.config``.
"""
