"""Queue control on the admin page in a real headless Chromium: the Hold button of the message view and the
destination form of the queue view write their commands, which the running egress acknowledges, and say so."""
from __future__ import annotations

import pytest

from tests.browser.support import fill, login, visible, wait

from selenium.webdriver.common.by import By  # noqa: E402 (after the peer check)

pytestmark = pytest.mark.scenario


def test_hold_from_the_message_view_and_suspend_from_the_queue_view_say_what_they_did(pipeline, browser):
    gw, _, url = pipeline
    login(browser, url, ready="view-gateways")
    browser.find_element(By.ID, "nav-trace").click()
    fill(browser, "trace-id", "01HOLDFROMTHEPAGE")
    fill(browser, "trace-reason", "customer asked")
    browser.find_element(By.CSS_SELECTOR, "#trace-actions button[data-command=hold]").click()
    result = lambda d: d.find_element(By.ID, "trace-action-result").text  # noqa: E731
    wait(browser, lambda d: "applied by" in result(d), 90)
    assert result(browser).startswith("hold: 1 message(s), applied by 1 egress replica(s)"), result(browser)
    wait(browser, lambda d: "QueueCommandIssued" in d.find_element(By.ID, "trace-rows").text)
    issued = [e for e in gw.events("01HOLDFROMTHEPAGE") if type(e).__name__ == "QueueCommandIssued"][0]
    assert (issued.command, issued.operator, issued.reason) == ("hold", "admin", "customer asked")

    browser.find_element(By.ID, "nav-queue").click()
    wait(browser, lambda d: visible(d, "destination-form"))
    fill(browser, "queue-reason", "relay maintenance")
    fill(browser, "destination-name", "relay")
    browser.find_element(By.CSS_SELECTOR, "#destination-form button[value=suspend]").click()
    wait(browser, lambda d: "relay" in d.find_element(By.ID, "destination-rows").text, 90)
    assert "suspend: 1 destination, applied by 1 egress replica(s)" in browser.find_element(
        By.ID, "queue-action-result").text
    browser.find_element(By.CSS_SELECTOR, "#destination-rows button").click()  # resume
    wait(browser, lambda d: d.find_element(By.ID, "destination-rows").text == "", 90)
