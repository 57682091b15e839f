"""The admin page's SMTP AUTH & DKIM section in a real headless Chromium: add an AUTH user, change its password,
generate a DKIM key and read the TXT record to publish, see a field error, remove both — the password and the
private key never on the page, the changes in mail.config as the stages read them."""
from __future__ import annotations

import asyncio

import pytest

from mailgate.core.config_events import effective_config, read_state
from mailgate.core.passwords import check_password
from tests.browser.support import fill, shot, visible, wait
from tests.browser.test_admin_page import session  # noqa: F401 (fixture: logged in on the shared pipeline)
from tests.support.secrets import MANAGED_AUTH_NEW_PASSWORD as NEW_PW
from tests.support.secrets import MANAGED_AUTH_PASSWORD as USER_PW

By = pytest.importorskip("selenium.webdriver.common.by").By
pytestmark = pytest.mark.scenario


def _live(gw):
    state, _ = asyncio.run(read_state(gw.cfg))
    return effective_config(gw.cfg, state)


def _rows(driver, tbody: str) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"#{tbody} tr")


def test_auth_users_and_dkim_keys_are_managed_on_the_page(pipeline, session):
    gw, _, _ = pipeline
    d = session
    d.find_element(By.ID, "nav-mailauth").click()
    wait(d, lambda d: visible(d, "view-mailauth"))

    fill(d, "au-username", "relay2")
    fill(d, "au-password", USER_PW)
    fill(d, "au-senders", "@sender.test")
    d.find_element(By.ID, "au-add").click()
    wait(d, lambda d: any(r.get_attribute("data-user") == "relay2" for r in _rows(d, "authuser-rows")))
    row = d.find_element(By.CSS_SELECTOR, '#authuser-rows tr[data-user="relay2"]')
    assert "@sender.test" in row.text and "set" in row.text
    assert check_password(USER_PW, _live(gw).ingress.auth.users[0].password_hash)

    row.find_element(By.CSS_SELECTOR, "input.au-newpw").send_keys(NEW_PW)
    row.find_element(By.CSS_SELECTOR, "button.au-change").click()
    wait(d, lambda d: "password of relay2 changed" in d.find_element(By.ID, "mailauth-status").text)
    assert check_password(NEW_PW, _live(gw).ingress.auth.users[0].password_hash)

    fill(d, "dk-domain", "not a domain")
    fill(d, "dk-selector", "s1")
    d.find_element(By.ID, "dk-generate").click()
    wait(d, lambda d: "domain: a fully qualified domain name" in d.find_element(By.ID, "dkim-error").text)
    fill(d, "dk-domain", "page.test")
    d.find_element(By.ID, "dk-generate").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#dkim-rows tr[data-domain="page.test"] code'), 60)
    row = d.find_element(By.CSS_SELECTOR, '#dkim-rows tr[data-domain="page.test"]')
    assert "TXT at s1._domainkey.page.test" in row.text
    assert row.find_element(By.CSS_SELECTOR, "code").text.startswith("v=DKIM1; k=rsa; p=")
    [key] = _live(gw).dkim_signing.keys
    assert key.private_key.sealed is not None
    source = d.page_source
    for secret in (USER_PW, NEW_PW, "PRIVATE KEY", key.private_key.sealed):
        assert secret not in source
    shot(d, "admin-mail-auth.png")

    d.execute_script("window.confirm = () => true")
    d.find_element(By.CSS_SELECTOR, '#dkim-rows tr[data-domain="page.test"] button.dk-remove').click()
    d.find_element(By.CSS_SELECTOR, '#authuser-rows tr[data-user="relay2"] button.au-remove').click()
    wait(d, lambda d: not _rows(d, "dkim-rows") and not _rows(d, "authuser-rows"))
    live = _live(gw)
    assert live.ingress.auth.users == [] and live.dkim_signing.keys == []
