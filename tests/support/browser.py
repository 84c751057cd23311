"""A real headless Chromium and a real server for the dashboard's browser test.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``; ``IFTB_CHROMIUM`` overrides it),
driven by Playwright's Python API with ``executable_path``: no browser build is downloaded. Without
it the browser test is skipped with a reason, except under ``CI=true``, where that fails the run
(as a missing PostgreSQL does).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import ConsoleMessage, Page, Route

CHROMIUM = Path(os.environ.get("IFTB_CHROMIUM", "/usr/bin/chromium"))
LOCAL_HOST = "127.0.0.1"
START_SECONDS = 30.0


def chromium() -> Path:
    """Debian's Chromium; its absence skips the test, or fails it under ``CI=true``."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set IFTB_CHROMIUM)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on a free loopback port, in a thread; its base URL."""
    listener = socket.socket()
    listener.bind((LOCAL_HOST, 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard's server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{LOCAL_HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        listener.close()


@dataclass
class Watch:
    """What a page did that it must not: a request to another host, a console error."""

    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def attach(self, page: Page) -> None:
        """Route every request of ``page`` (any other host is recorded and aborted) and record
        its console errors and uncaught exceptions."""
        await page.route("**/*", self._route)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    async def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            await route.continue_()
            return
        self.foreign_requests.append(route.request.url)
        await route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)


FIGURES_JS = """() => Array.from(document.querySelectorAll("[data-testid]"), (node) => [
    node.dataset.testid,
    node.querySelector("time")?.getAttribute("datetime") ?? node.textContent,
])"""
"""Every figure on the page as ``[testid, text]``; a time as the API's exact string."""


async def figures(page: Page) -> dict[str, list[str]]:
    """The page's figures by ``data-testid``, in page order."""
    found: dict[str, list[str]] = {}
    for testid, text in await page.evaluate(FIGURES_JS):
        found.setdefault(testid, []).append(text)
    return found


CANVAS_INK_JS = """(selector) => Array.from(
    document.querySelectorAll(selector + " canvas"),
    (canvas) => {
        const { width, height } = canvas;
        if (width === 0 || height === 0) return { width, height, ink: 0 };
        const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
        const colours = new Set();
        for (let at = 0; at < pixels.length; at += 4) {
            if (pixels[at + 3] > 0) colours.add(pixels.slice(at, at + 4).join(","));
        }
        return { width, height, ink: colours.size };
    })"""
"""Each canvas of a chart: its size and how many colours it shows (0 or 1: blank)."""


async def canvases(page: Page, selector: str) -> list[dict[str, int]]:
    """Size and colour count of every canvas inside ``selector``."""
    found: list[dict[str, int]] = await page.evaluate(CANVAS_INK_JS, selector)
    return found
