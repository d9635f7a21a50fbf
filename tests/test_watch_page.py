"""``watch --listen``: /metrics, /healthz and the status page, the page rendered in real
headless Chromium (Debian's, driven by Playwright; no browser download)."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxflip.watch.metrics import WatchMetrics
from mxflip.watch.rounds import Watcher
from mxflip.watch.server import serve
from tests.support.canary_lab import FakeClock, ca
from tests.support.ports import free_port
from tests.support.required import server_unavailable
from tests.support.watch_lab import WatchLab, lab

__all__ = ["ca", "lab"]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def served(lab: WatchLab) -> Iterator[tuple[str, Watcher, FakeClock]]:
    clock = FakeClock()
    config = lab.config('interval = "60s"\non_primary_failing = "propose"')
    metrics = WatchMetrics(config)
    w = Watcher(config, clock=clock, hooks=metrics.hooks())
    metrics.attach(w)
    port = free_port()
    server = serve("127.0.0.1", port, metrics, w)
    try:
        yield f"http://127.0.0.1:{port}", w, clock
    finally:
        server.shutdown()
        w.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_healthz_metrics(served: tuple[str, Watcher, FakeClock]) -> None:
    base, w, clock = served
    assert get(base + "/healthz")[0] == 503  # no round yet
    asyncio.run(w.round())
    assert get(base + "/healthz") == (200, "ok\n")
    code, text = get(base + "/metrics")
    assert code == 200
    assert "mxflip_watch_rounds_total 1.0" in text
    assert f'mxflip_watch_domain_state{{domain="{w.domains[0].display}",state="ok"}} 1.0' in text
    assert "mxflip_canary_last_check_timestamp_seconds" in text or "mxflip_canary_status" in text
    clock.t += 121  # more than 2 × interval since the last round
    assert get(base + "/healthz")[0] == 503
    assert get(base + "/nope")[0] == 404


def test_page_in_headless_chromium(
    served: tuple[str, Watcher, FakeClock], lab: WatchLab, tmp_path: Path
) -> None:
    if not os.path.exists(CHROMIUM):
        server_unavailable("Chromium", "/usr/bin/chromium is missing", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    base, w, clock = served
    for _ in range(3):
        asyncio.run(w.round())
        clock.t += 60
    lab.proxy.handler.drop = lab.proxy2.handler.drop = True
    for _ in range(6):
        asyncio.run(w.round())
        clock.t += 60
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(base + "/", timeout=15000)
            section = page.locator(f"section[data-domain='{lab.domain}']")
            assert section.locator(".state").inner_text() == "failing"
            assert section.locator(".live").inner_text() == "primary"
            assert section.locator(".agree").inner_text() == "yes"
            assert section.locator(".backup-ready").inner_text() == "ready"
            assert section.locator("svg.chart").count() == 1
            assert section.locator("svg.chart circle.point.backup").count() >= 3
            assert section.locator("svg.chart rect.failed.primary").count() >= 1
            assert page.locator("#proposals tr.proposal").count() == 1
            assert "mxflip approve" in page.locator("#proposals").inner_text()
            shot = Path(os.environ.get("MXFLIP_SCREENSHOT_DIR", tmp_path)) / "watch-page.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(u.startswith(base) for u in requests), requests  # no external asset
