"""The dashboard page's time to first render in a real browser: headless Chromium (Debian's, as
the browser test drives it) opens the page against a running server N times, each in a fresh
browser context (nothing cached, as a first visit), and the time from navigation start to the
page's ``performance.mark("iftb-first-render")`` — set once its first data is drawn — is taken.

    .venv/bin/python -m benchmarks.bench_page --url http://127.0.0.1:8765 --token T [--opens 20]

``benchmarks.bench_web`` calls ``first_render_lines`` while its server is up, for the Dashboard
section of docs/performance.md. Beside the total, the span of the page's API requests (first
request sent to last answer received, from the browser's resource timing) says how much of it is
the server's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, ViewportSize, sync_playwright

from benchmarks.standalone import TITLES

CHROMIUM = Path(os.environ.get("IFTB_CHROMIUM", "/usr/bin/chromium"))
OPENS = 20
RENDER_TIMEOUT_MS = 120_000
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
RENDER_JS = """() => {
    const [mark] = performance.getEntriesByName("iftb-first-render");
    const api = performance.getEntriesByType("resource").filter(
        (entry) => new URL(entry.name).pathname.startsWith("/api/")
            && entry.startTime < mark.startTime
    );
    const first = Math.min(...api.map((entry) => entry.startTime));
    const last = Math.max(...api.map((entry) => entry.responseEnd));
    return [mark.startTime, api.length ? last - first : 0];
}"""
"""Milliseconds from navigation start to the first render, and the span of the API requests
made before it."""


@dataclass(frozen=True)
class FirstRenders:
    """The opens' times to first render and their API spans, in milliseconds."""

    browser: str
    render_ms: list[float]
    api_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.render_ms)

    @property
    def median_api_ms(self) -> float:
        return statistics.median(self.api_ms)


def time_first_renders(base_url: str, token: str, opens: int = OPENS) -> FirstRenders:
    """Open the page ``opens`` times, each in a fresh context, and time its first render."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            _open_once(browser, base_url, token)  # warm-up: the browser process's own start
            timed = [_open_once(browser, base_url, token) for _ in range(opens)]
            return FirstRenders(
                browser=f"Chromium {browser.version}",
                render_ms=[render for render, _ in timed],
                api_ms=[api for _, api in timed],
            )
        finally:
            browser.close()


def _open_once(browser: Browser, base_url: str, token: str) -> tuple[float, float]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/?refresh=0#token={token}")
        page.wait_for_selector("body[data-rendered=true]", timeout=RENDER_TIMEOUT_MS)
        render, api = page.evaluate(RENDER_JS)
        return float(render), float(api)
    finally:
        context.close()


def first_render_lines(base_url: str, token: str, backend: str, opens: int = OPENS) -> list[str]:
    """The page's time to first render against the server at ``base_url``, as report lines."""
    title = TITLES.get(backend, backend)
    if not CHROMIUM.is_file():
        return [f"- {title}: the page's time to first render was not measured (no {CHROMIUM})."]
    found = time_first_renders(base_url, token, opens)
    return [
        f"- {title}: the page's time to first render in headless {found.browser}: median "
        f"{found.median_ms:.0f} ms (min {min(found.render_ms):.0f}, max "
        f"{max(found.render_ms):.0f}) over {opens} opens, each in a fresh browser context "
        f"(nothing cached), from navigation start to `performance.mark('iftb-first-render')` "
        f"after the first data is drawn; of which the page's API requests span "
        f"{found.median_api_ms:.0f} ms (median)."
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_page", description=__doc__)
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--token", required=True, help="the server's API token")
    parser.add_argument("--opens", type=int, default=OPENS, help="timed opens of the page")
    parser.add_argument("--backend", default="server", help="what the report line calls it")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.opens < 1:
        parser.error("--opens: at least 1")
    print("\n".join(first_render_lines(args.url, args.token, args.backend, args.opens)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
