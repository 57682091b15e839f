"""The browser tests' shared fixture: one headless Chromium per test module (tests/browser/support.py has the
helpers, and skips a module whose peers are missing before this fixture is asked for)."""
from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.fixture(scope="module")
def browser():
    from tests.browser.support import CHROMEDRIVER, CHROMIUM, webdriver
    profile = tempfile.mkdtemp(prefix="mailgate-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", "--window-size=1280,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, kafka_jars):
    """Broker, all stages delivering to a recording primary for example.test, and `mailgate admin` as a process:
    (gateway, primary, page URL). Started here, not in a test, so each test runs alone or in any order."""
    from mailgate.core.secrets import new_key
    from mailgate.ops.admin.auth import hash_password
    from tests.browser.support import PASSWORD, USERNAME
    from tests.support.admin_server import admin_server
    from tests.support.harness import Gateway, SmtpPrimary
    work = tmp_path_factory.mktemp("admin-browser")
    primary = SmtpPrimary().start()
    gw = Gateway(work)
    gw.configure({"admin": {"username": USERNAME, "password_hash": hash_password(PASSWORD, n=2 ** 12)},
                  "inbound_gateways": [{"name": "primary", "mode": "domain_forward",
                                        "primary_addresses": ["127.0.0.1"], "primary_port": primary.port,
                                        "domain_verification": {"domains": ["example.test"]}}]})
    try:
        gw.start_broker()
        gw.start_all()
        with admin_server(gw, extra_env={"MAILGATE_SECRET_KEY": new_key()}) as base:
            yield gw, primary, base + "/"
    finally:
        gw.stop_all()
        gw.release()
        primary.stop()
