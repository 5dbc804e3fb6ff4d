"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright, for browser tests.

No browser download: Playwright launches the system binary. When it is missing the
tests are skipped saying why (``make test`` installs it as root), or fail under CI.
Screenshots go to ``SCREENSHOT_DIR`` when set, else to a pytest temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_binary() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def require_chromium() -> str:
    """The Chromium path, or skip (fail under CI) the calling test module."""
    path = chromium_binary()
    if path is None:
        reason = "chromium is not installed (apt-get install chromium; `make test` does it as root)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return path


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module."""
    from playwright.sync_api import sync_playwright

    path = require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    given = os.environ.get("SCREENSHOT_DIR")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    return tmp_path_factory.mktemp("screenshots")
