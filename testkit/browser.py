"""Headless Chromium for browser tests: the system's Debian ``chromium`` driven by Playwright (no browser download).

Tests call :func:`require_chromium` (skips with the reason where no browser is installed) and open pages through
:func:`headless_page`. The flags keep Chromium off this machine's closed network (no background fetches, no
component updates) and let it run as root in a container (``--no-sandbox``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> str | None:
    """The browser to drive: ``$CHROMIUM`` if set, else the first of the usual names on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_browser_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if chromium_path() is None:
        return "no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


def require_chromium() -> None:
    """Skip the calling test, with the reason, where no browser can be driven."""
    import pytest

    reason = missing_browser_reason()
    if reason is not None:
        pytest.skip(reason)


@contextmanager
def headless_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Playwright page in a fresh headless Chromium; closed (browser included) on exit."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError(missing_browser_reason() or "no Chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=list(CHROMIUM_FLAGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
