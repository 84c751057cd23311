"""The dashboard page's time to first render in a real browser: headless Chromium (Debian's, as
the browser test drives it) opens the page against a running server N times, each in a fresh
browser context (nothing cached, as a first visit), and takes the time from navigation start to
the page's marks: ``iftb-first-render`` when its first figure is drawn (each section is drawn as
soon as its answer comes), ``iftb-complete-render`` when every figure is.

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
    const [first] = performance.getEntriesByName("iftb-first-render");
    const [complete] = performance.getEntriesByName("iftb-complete-render");
    const api = performance.getEntriesByType("resource").filter(
        (entry) => new URL(entry.name).pathname.startsWith("/api/")
            && entry.startTime < complete.startTime
    );
    const sent = Math.min(...api.map((entry) => entry.startTime));
    const answered = Math.max(...api.map((entry) => entry.responseEnd));
    return [first.startTime, complete.startTime, api.length ? answered - sent : 0];
}"""
"""Milliseconds from navigation start to the first figure drawn and to the last, and the span of
the API requests made before the last."""


@dataclass(frozen=True)
class Render:
    """One open of the page, in milliseconds from navigation start."""

    first: float
    complete: float
    api_span: float


@dataclass(frozen=True)
class FirstRenders:
    """The opens of the page in one browser."""

    browser: str
    opens: list[Render]

    def times(self, name: str) -> list[float]:
        return [float(getattr(render, name)) for render in self.opens]

    def median(self, name: str) -> float:
        return statistics.median(self.times(name))

    def spread(self, name: str) -> str:
        return f"min {min(self.times(name)):.0f}, max {max(self.times(name)):.0f}"


def time_first_renders(base_url: str, token: str, opens: int = OPENS) -> FirstRenders:
    """Open the page ``opens`` times, each in a fresh context, and time its first render."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            _open_once(browser, base_url, token)  # warm-up: the browser process's own start
            timed = [_open_once(browser, base_url, token) for _ in range(opens)]
            return FirstRenders(f"Chromium {browser.version}", timed)
        finally:
            browser.close()


def _open_once(browser: Browser, base_url: str, token: str) -> Render:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/?refresh=0#token={token}")
        page.wait_for_selector("body[data-rendered=true]", timeout=RENDER_TIMEOUT_MS)
        first, complete, api_span = page.evaluate(RENDER_JS)
        return Render(float(first), float(complete), float(api_span))
    finally:
        context.close()


def first_render_lines(base_url: str, token: str, backend: str, opens: int = OPENS) -> list[str]:
    """The page's time to first render against the server at ``base_url``, as report lines."""
    title = TITLES.get(backend, backend)
    if not CHROMIUM.is_file():
        return [f"- {title}: the page's time to first render was not measured (no {CHROMIUM})."]
    found = time_first_renders(base_url, token, opens)
    return [
        f"- {title}: the page in headless {found.browser}, {opens} opens each in a fresh browser "
        f"context (nothing cached), from navigation start: first figure drawn after "
        f"{found.median('first'):.0f} ms median ({found.spread('first')}), every figure after "
        f"{found.median('complete'):.0f} ms ({found.spread('complete')}), of which the page's "
        f"API requests span {found.median('api_span'):.0f} ms (median) "
        f"(`performance.mark` iftb-first-render, iftb-complete-render)."
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
