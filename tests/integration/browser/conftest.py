"""One Chromium process for the whole run, and a gateway of its own serving the demo.

The browser tests get their own gateway process (same deployment as the System's: same Kafka
topics, database and services) with the development page and tokens on, so restarting or
killing it, and counting its connections, concerns the browsers alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.integration.browser.demo import serve_demo
from tests.integration.harness import ROOT, ServiceProcess, System

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the network-quieting flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses (many at a time); --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SDK_DIST = ROOT / "clients" / "js" / "dist"


def _require_chromium_and_sdk() -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium")
    if not (SDK_DIST / "index.js").exists() or not (ROOT / "clients/js/dist-demo/app.js").exists():
        pytest.fail("the SDK is not built: `make test` runs `make sdk`")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    _require_chromium_and_sdk()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
async def web_gateway(system: System) -> AsyncIterator[ServiceProcess]:
    """A gateway that serves the demo at /dev/ and mints development tokens."""
    gateway = system.extra_gateway("web-gateway")
    serve_demo(gateway)
    gateway.start()
    await gateway.wait_ready()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the run's screenshots go (BROWSER_SCREENSHOTS, else a temporary folder)."""
    configured = os.environ.get("BROWSER_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
