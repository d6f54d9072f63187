"""Headless Chromium for the tests, driven by Selenium through Debian's chromedriver (nothing is downloaded:
no Selenium Manager, no browser vendor). Missing pieces skip the browser tests with how to install them,
unless ``CI_REQUIRE_BROWSER`` is set (CI sets it: there they fail instead)."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = ("install it with: apt-get install -y chromium chromium-driver (Debian), then "
           ".venv/bin/python -m pip install -r requirements-dev.txt (selenium)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required")


def missing() -> list:
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        absent.append("the selenium package")
    return absent


def require_browser() -> None:
    absent = missing()
    if not absent:
        return
    message = f"browser tests skipped: {', '.join(absent)} not found; {INSTALL}"
    if os.environ.get("CI_REQUIRE_BROWSER"):
        pytest.fail(message.replace("skipped", "cannot run (CI_REQUIRE_BROWSER is set)"), pytrace=False)
    pytest.skip(message)


def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile; its console messages readable with ``get_log("browser")``."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="redraw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def javascript_errors(driver: Any, network: bool = True) -> list:
    """The errors the browser logged since the last call: uncaught exceptions and console errors, and with
    ``network`` the failed loads too (a refused upload's 4xx answer is one: ``network=False`` then)."""
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"
            and (network or entry.get("source") != "network")]
