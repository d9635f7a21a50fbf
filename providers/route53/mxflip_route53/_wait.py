"""Polling a Route53 change until INSYNC, with bounded exponential backoff.

Not botocore's ``resource_record_sets_changed`` waiter: its fixed 30 s x 60 attempts
would make every failover wait at least 30 s and up to half an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mxflip import Clock, ProviderError


def wait_insync(
    status: Callable[[str], str],
    change_ids: Sequence[str],
    *,
    zone: str,
    timeout: float,
    initial: float,
    maximum: float,
    clock: Clock,
) -> None:
    """Poll ``status(id)`` for every change until each says ``INSYNC``.

    Pauses start at ``initial`` seconds and double up to ``maximum``; ``clock`` tells the
    time and does the waiting. The whole wait is bounded by ``timeout`` seconds of
    ``clock`` and, in case a clock stands still, by a number of polls a real clock could
    not exceed.
    """
    deadline = clock.now() + timeout
    polls_left = int(timeout / initial) + 2 * len(change_ids) + 2
    for change_id in change_ids:
        delay = initial
        while True:
            polls_left -= 1
            if status(change_id) == "INSYNC":
                break
            remaining = deadline - clock.now()
            if remaining <= 0 or polls_left <= 0:
                raise ProviderError(
                    f"Route53 change {change_id} to zone {zone.rstrip('.')} is still PENDING "
                    f"after {timeout:g} s",
                    hint="the change is accepted and will be served; Route53 usually syncs "
                    "within a minute. Check with 'mxflip status' or raise wait_timeout",
                )
            clock.sleep(min(delay, remaining))
            delay = min(delay * 2, maximum)
