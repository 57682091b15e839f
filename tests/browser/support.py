"""What every browser test shares: the check that the real peers are here (Debian's chromium and chromedriver,
selenium), and the page helpers (wait on a condition, visibility, typing, screenshots, logging in).

Importing this module skips the importing test module when a peer is missing, saying "(peer missing: …)" so that
MAILGATE_REQUIRE_PEERS=1 turns the skip into a failure. The `browser` fixture is in tests/browser/conftest.py.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.harness import ROOT
from tests.support.secrets import ADMIN_BROWSER_PASSWORD

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver) "
                "(peer missing: chromium)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="needs selenium (pip install selenium) (peer missing: selenium)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

USERNAME, PASSWORD = "admin", ADMIN_BROWSER_PASSWORD
# The committed screenshots are refreshed with MAILGATE_SCREENSHOTS=docs; otherwise they go to a scratch dir.
SHOTS = ROOT / "docs" / "screenshots" if os.environ.get("MAILGATE_SCREENSHOTS") == "docs" else \
    Path(tempfile.gettempdir()) / "mailgate-screenshots"


def wait(driver, cond, timeout_s: float = 20):
    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(lambda d: cond(d))


def visible(driver, element_id: str) -> bool:
    return driver.find_element(By.ID, element_id).is_displayed()


def fill(driver, element_id: str, text: str) -> None:
    e = driver.find_element(By.ID, element_id)
    e.clear()
    e.send_keys(text)


def shot(driver, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(700, min(height + 160, 3000)))
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))
    driver.set_window_size(1280, 900)


def login(driver, url: str, ready: str = "nav") -> None:
    """The page at `url`, logged in as the test administrator (whatever ran before in this browser), once the
    element `ready` shows."""
    driver.get(url)
    wait(driver, lambda d: visible(d, "login-form") or visible(d, "nav"))
    if visible(driver, "login-form"):
        fill(driver, "login-username", USERNAME)
        fill(driver, "login-password", PASSWORD)
        driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda d: visible(d, ready))
