"""The admin page in a real headless Chromium: log in, trace a message that went through the whole pipeline,
create each kind of gateway through the form (watching the mode-dependent cards), see inline errors and the failed
verification step, disable a gateway from the list. Saves the screenshots in docs/screenshots/."""
from __future__ import annotations

import asyncio
import smtplib

import pytest

from mailgate.core.config_events import read_state
from tests.browser.support import PASSWORD, fill, login, shot, visible, wait
from tests.support.harness import free_port
from tests.support.secrets import BROWSER_RELAY_PASSWORD, BROWSER_SMARTERMAIL_PASSWORD

from selenium.webdriver.common.by import By  # noqa: E402 (after the peer check)
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.scenario


@pytest.fixture
def session(pipeline, browser):
    """The browser on the page, logged in (whatever test ran before, if any)."""
    login(browser, pipeline[2], ready="view-gateways")
    return browser


def test_login_is_required_and_a_wrong_password_is_refused(pipeline, browser):
    _, _, url = pipeline
    browser.get(url)
    browser.delete_all_cookies()  # logged out, whatever ran before
    browser.get(url)
    wait(browser, lambda d: visible(d, "login-form"))
    assert not visible(browser, "nav")
    fill(browser, "login-username", "admin")
    fill(browser, "login-password", "wrong")
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: "wrong username or password" in d.find_element(By.ID, "login-error").text)
    fill(browser, "login-password", PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: visible(d, "view-gateways"))
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["mailgate_session"]["httpOnly"] and cookies["mailgate_session"]["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # the session cookie is invisible to scripts


def test_trace_of_a_message_sent_through_the_pipeline(pipeline, session):
    gw, primary, _ = pipeline
    browser = session
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        assert s.rcpt("bob@example.test")[0] == 250, gw.logs()[-3000:]
        code, reply = s.data(b"From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: trace me\r\n\r\nHi.\r\n")
    assert code == 250, reply
    mid = reply.decode().rsplit(" ", 1)[1]
    primary.wait_for(1)
    gw.wait_events(mid, "MessageDelivered")
    browser.find_element(By.ID, "nav-trace").click()
    fill(browser, "trace-id", mid)
    browser.find_element(By.ID, "trace-submit").click()
    wait(browser, lambda d: "MessageDelivered" in d.find_element(By.ID, "trace-rows").text)
    rows = [r.find_elements(By.TAG_NAME, "td")[1].text
            for r in browser.find_elements(By.CSS_SELECTOR, "#trace-rows tr")]
    assert rows[0] == "MessageReceived" and rows[-1] == "MessageDelivered"
    shot(browser, "message-trace.png")


def _new(browser, mode: str) -> None:
    browser.find_element(By.ID, "nav-gateways").click()
    wait(browser, lambda d: visible(d, "new-gateway"))
    browser.find_element(By.ID, "new-gateway").click()
    wait(browser, lambda d: visible(d, "gateway-form"))
    Select(browser.find_element(By.ID, "f-mode")).select_by_value(mode)


def _cards(browser) -> dict[str, bool]:
    return {c: visible(browser, c) for c in ("card-outbound", "card-inbound", "card-domains", "card-smartermail",
                                             "card-spam", "row-sender-domains", "row-smtp-user-verification")}


def _save_and_wait_listed(browser, name: str) -> None:
    browser.find_element(By.ID, "form-save").click()
    wait(browser, lambda d: visible(d, "view-gateways") and d.find_elements(By.CSS_SELECTOR, f'tr[data-name="{name}"]'))


def test_create_each_gateway_type_through_the_form_and_disable_one(pipeline, session):
    gw, _, _ = pipeline
    browser = session
    browser.find_element(By.ID, "nav-gateways").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-name="primary"]'))  # the file's gateway
    assert "Otherwise, this page will be blank." in browser.page_source

    _new(browser, "round_robin")
    assert _cards(browser) == {"card-outbound": True, "card-inbound": False, "card-domains": False,
                               "card-smartermail": False, "card-spam": False, "row-sender-domains": False,
                               "row-smtp-user-verification": False}
    assert not visible(browser, "f-auth-username")
    browser.find_element(By.ID, "f-auth-enabled").click()
    assert visible(browser, "f-auth-username") and visible(browser, "f-auth-password")
    fill(browser, "f-name", "relay1")
    fill(browser, "f-port", "70000")
    browser.find_element(By.ID, "form-save").click()  # empty address, port out of range: errors by the fields
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-error-for="port"]'))
    assert "less than or equal to 65535" in browser.find_element(By.CSS_SELECTOR, '[data-error-for="port"]').text
    assert browser.find_elements(By.CSS_SELECTOR, '[data-error-for="address"]')
    shot(browser, "gateway-form-round-robin.png")
    fill(browser, "f-address", "192.0.2.25")
    fill(browser, "f-port", "587")
    Select(browser.find_element(By.ID, "f-encryption")).select_by_value("tls")
    fill(browser, "f-auth-username", "relayuser")
    fill(browser, "f-auth-password", BROWSER_RELAY_PASSWORD)
    _save_and_wait_listed(browser, "relay1")
    assert BROWSER_RELAY_PASSWORD not in browser.page_source

    _new(browser, "specific_domains")
    assert _cards(browser)["row-sender-domains"] and not _cards(browser)["card-inbound"]
    fill(browser, "f-name", "unreachable")
    fill(browser, "f-address", "127.0.0.1")
    fill(browser, "f-port", str(free_port()))
    fill(browser, "f-sender-domains", "sales.example.test\nbilling.example.test")
    browser.find_element(By.ID, "f-verify").click()
    browser.find_element(By.ID, "form-save").click()
    wait(browser, lambda d: visible(d, "verify-result"))
    assert 'failed at step "connect"' in browser.find_element(By.ID, "verify-result").text
    shot(browser, "gateway-form-specific-domains.png")
    browser.find_element(By.ID, "f-verify").click()  # save without verifying
    _save_and_wait_listed(browser, "unreachable")

    _new(browser, "backup_mx")
    assert _cards(browser) == {"card-outbound": False, "card-inbound": True, "card-domains": False,
                               "card-smartermail": True, "card-spam": True, "row-sender-domains": False,
                               "row-smtp-user-verification": False}
    fill(browser, "f-name", "backup1")
    fill(browser, "f-primary-addresses", "192.0.2.10\n192.0.2.20-192.0.2.29")
    fill(browser, "f-description", "Backup MX for the office")
    shot(browser, "gateway-form-backup-mx.png")
    _save_and_wait_listed(browser, "backup1")

    _new(browser, "domain_forward")
    assert _cards(browser) == {"card-outbound": False, "card-inbound": True, "card-domains": True,
                               "card-smartermail": True, "card-spam": True, "row-sender-domains": False,
                               "row-smtp-user-verification": True}
    fill(browser, "f-name", "forward1")
    fill(browser, "f-primary-addresses", "198.51.100.0/28")
    browser.find_element(By.ID, "f-smtp-user-verification").click()
    # Domain verification "Web service" is offered only while SmarterMail gateway mode is ticked.
    ws = browser.find_element(By.ID, "f-domain-mode-ws")
    assert not browser.find_element(By.ID, "f-sm-enabled").is_selected()
    assert ws.get_property("hidden") and ws.get_property("disabled")
    browser.find_element(By.ID, "f-sm-enabled").click()
    assert not ws.get_property("hidden") and not ws.get_property("disabled")
    assert not visible(browser, "f-excluded-domains")
    Select(browser.find_element(By.ID, "f-domain-mode")).select_by_value("web_service")
    assert visible(browser, "f-excluded-domains") and visible(browser, "f-never-fetched")
    browser.find_element(By.ID, "f-sm-enabled").click()  # untick: Web service goes, and so does its choice
    assert ws.get_property("hidden") and ws.get_property("disabled")
    assert browser.find_element(By.ID, "f-domain-mode").get_property("value") == "specified_domains"
    assert not visible(browser, "f-excluded-domains") and not visible(browser, "f-never-fetched")
    Select(browser.find_element(By.ID, "f-domain-mode")).select_by_value("all_but_specified_domains")
    fill(browser, "f-domains", "example.org")
    browser.find_element(By.ID, "f-sm-enabled").click()
    fill(browser, "f-sm-url", "https://mail.example.org")
    fill(browser, "f-sm-username", "gateway")
    fill(browser, "f-sm-password", BROWSER_SMARTERMAIL_PASSWORD)
    assert visible(browser, "card-virus")
    Select(browser.find_element(By.ID, "f-virus-infected")).select_by_value("discard")
    Select(browser.find_element(By.ID, "f-virus-dangerous")).select_by_value("strip")
    browser.find_element(By.ID, "f-virus-at-data").click()
    shot(browser, "gateway-form-domain-forward.png")
    _save_and_wait_listed(browser, "forward1")

    switch = browser.find_element(By.CSS_SELECTOR, 'input.status-switch[data-gateway="outbound/relay1"]')
    assert switch.is_selected()
    switch.find_element(By.XPATH, "..").click()
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-name="relay1"]')
    wait(browser, lambda d: "Disabled" in row.text)
    shot(browser, "gateway-list.png")

    state, _ = asyncio.run(read_state(gw.cfg))
    assert state["outbound/relay1"].settings["status"] == "disabled"
    assert state["outbound/unreachable"].settings["sender_domains"] == ["sales.example.test", "billing.example.test"]
    assert state["inbound/forward1"].settings["domain_verification"]["mode"] == "all_but_specified_domains"
    assert state["inbound/backup1"].settings["mode"] == "backup_mx"
    virus = state["inbound/forward1"].settings["virus"]
    assert (virus["infected"], virus["unscannable"], virus["scan_at_data"]) == ("discard", "quarantine", True)
    assert virus["attachments"]["dangerous_action"] == "strip" and virus["attachments"]["dangerous_files"]
    assert state["inbound/backup1"].settings["virus"]["infected"] == "quarantine"  # the defaults
    for secret in (BROWSER_RELAY_PASSWORD, BROWSER_SMARTERMAIL_PASSWORD):
        assert all(secret not in s.event.settings_json for s in state.values())
        assert secret not in gw.logs()  # admin.log and every stage's log


def test_release_a_quarantined_message(pipeline, session):
    from tests.integration.test_admin_api import _hold
    gw, _, _ = pipeline
    browser = session
    asyncio.run(_hold(gw.cfg, "QBROWSER1"))
    browser.find_element(By.ID, "nav-quarantine").click()
    row = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-message-id="QBROWSER1"]'))[0]
    assert "buy now" in row.text and "high" in row.text
    shot(browser, "quarantine.png")
    row.find_element(By.CSS_SELECTOR, "button.release").click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-message-id="QBROWSER1"]'))
    assert "QuarantineReleased" in gw.event_types("QBROWSER1")
