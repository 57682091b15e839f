"""The admin page's message tracking in a real headless Chromium: search by recipient finds the message and opens its
readable trace; the dashboard draws its charts from the tracking store with data in them. Mail goes through the
real broker and stages first, and `mailgate tracker` projects it. Saves screenshots (see test_admin_page.py)."""
from __future__ import annotations

import smtplib

import pytest

from mailgate.ops.admin.auth import hash_password
from tests.browser.support import PASSWORD, USERNAME, fill, login, shot, visible, wait
from tests.scenario.test_tracking import start_tracker, wait_caught_up
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.admin_server import admin_server
from tests.support.harness import Gateway, SmtpPrimary

from selenium.webdriver.common.by import By  # noqa: E402 (after the peer check)

pytestmark = pytest.mark.scenario
MAIL = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: Report %d\r\nX-Spam-Score: %d\r\n"
        b"\r\nhello\r\n")


async def _refuse_part_gone(server, session, envelope, address, rcpt_options) -> str:
    """The primary refuses one recipient at RCPT time and takes the others."""
    if address == "part-gone@example.test":
        return "550 5.1.1 no such user"
    envelope.rcpt_tos.append(address)
    return "250 2.1.5 Ok"


@pytest.fixture(scope="module")
def env(tmp_path_factory, kafka_jars):
    """Broker, stages, tracker and `mailgate admin`; ten delivered messages, two bounced, one deferred, and one
    delivered to one recipient and bounced for the other."""
    work = tmp_path_factory.mktemp("tracking-browser")
    primary = SmtpPrimary().start()
    primary.handler.script = lambda rcpts: ("550 5.1.1 no such user" if "gone@example.test" in rcpts else
                                            "451 4.3.0 busy" if "busy@example.test" in rcpts else None)
    gw = Gateway(work)
    gw.configure({"admin": {"username": USERNAME, "password_hash": hash_password(PASSWORD, n=2 ** 12)},
                  "inbound_gateways": [{"name": "primary", "mode": "domain_forward",
                                        "primary_addresses": ["127.0.0.1"], "primary_port": primary.port,
                                        "domain_verification": {"domains": ["example.test"]}}],
                  "delivery": {"retry_schedule_s": [1, 600]},
                  "spam": {"enabled": True, "scorers": [{"kind": "trusted_header", "trusted_ips": ["127.0.0.1"]}]},
                  "tracking": {"sqlite_path": str(work / "tracking.sqlite3")}, "metrics": {"tracker_port": 0}})
    primary.handler.handle_RCPT = _refuse_part_gone
    try:
        gw.start_broker()
        gw.start_all()
        start_tracker(gw)
        ids = [queued_id(send(gw.smtp_port, "bob@example.test", MAIL % (i, i))[1]) for i in range(10)]
        ids += [queued_id(send(gw.smtp_port, rcpt, MAIL % (99, 0))[1])
                for rcpt in ("gone@example.test", "gone@example.test", "busy@example.test")]
        gw.wait_events(ids[9], "MessageDelivered")
        gw.wait_events(ids[11], "MessageBounced")
        gw.wait_events(ids[12], "DeliveryDeferred")
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as s:  # a partial delivery: one of two refused
            s.ehlo("client.test")
            s.mail("alice@sender.test")
            s.rcpt("part-ok@example.test")
            s.rcpt("part-gone@example.test")
            ids.append(queued_id(s.data(MAIL % (77, 0))[1].decode()))
        gw.wait_events(ids[13], "MessageBounced")
        gw.wait_events(ids[13], "MessageDelivered")
        wait_caught_up(gw)
        with admin_server(gw) as base:
            yield gw, ids, base + "/"
    finally:
        gw.stop_all()
        gw.release()
        primary.stop()


def test_search_by_recipient_finds_the_message_and_opens_its_trace(env, browser):
    gw, ids, url = env
    login(browser, url)
    browser.find_element(By.ID, "nav-tracking").click()
    fill(browser, "track-recipient", "gone@example.test")
    browser.find_element(By.ID, "track-submit").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#track-rows tr")) == 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#track-rows tr")
    assert {r.get_attribute("data-message") for r in rows} == {ids[10], ids[11]}
    assert all("bounced" in r.text for r in rows)
    assert "Messages 1–2 of 2" in browser.find_element(By.ID, "track-summary").text
    shot(browser, "tracking-search.png")
    browser.find_element(By.CSS_SELECTOR, f"button.open-trace[data-message='{ids[11]}']").click()
    wait(browser, lambda d: visible(d, "trace-timeline"))
    timeline = browser.find_element(By.ID, "trace-timeline").text
    assert "Accepted inbound through gateway primary" in timeline
    assert "Routed to the primary server of inbound gateway primary" in timeline
    assert "gone@example.test: 550 5.1.1 no such user" in timeline and "Bounced" in timeline
    assert "{'" not in timeline and "received_at=" not in timeline  # no Python reprs
    facts = browser.find_element(By.ID, "trace-facts").text
    assert "Subject\nReport 99" in facts and "the primary server of inbound gateway primary" in facts
    shot(browser, "tracking-trace.png")


def test_a_partial_delivery_shows_as_such_with_each_recipients_state(env, browser):
    gw, ids, url = env
    login(browser, url)
    browser.find_element(By.ID, "nav-tracking").click()
    fill(browser, "track-recipient", "part-ok@example.test")
    browser.find_element(By.ID, "track-submit").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#track-rows tr")) == 1)
    row = browser.find_element(By.CSS_SELECTOR, "#track-rows tr")
    assert row.get_attribute("data-message") == ids[13]
    assert row.find_element(By.CSS_SELECTOR, "td.state").text == "partially delivered"
    assert "part-gone@example.test (bounced)" in row.text and "part-ok@example.test (delivered)" in row.text
    browser.find_element(By.CSS_SELECTOR, f"button.open-trace[data-message='{ids[13]}']").click()
    wait(browser, lambda d: visible(d, "trace-recipients"))
    assert "State\npartially delivered" in browser.find_element(By.ID, "trace-facts").text
    table = browser.find_element(By.ID, "trace-recipients").text
    assert "part-gone@example.test bounced 550 5.1.1 no such user" in table
    assert "part-ok@example.test delivered" in table


def test_the_dashboard_draws_its_charts_with_data(env, browser):
    gw, ids, url = env
    login(browser, url)
    browser.find_element(By.ID, "nav-dashboard").click()
    wait(browser, lambda d: int(d.find_element(By.ID, "chart-flow").get_attribute("data-points") or 0) > 0)
    points = {c: int(browser.find_element(By.ID, c).get_attribute("data-points") or 0)
              for c in ("chart-flow", "chart-queue", "chart-spam", "chart-latency")}
    assert all(n > 0 for n in points.values()), points
    assert "11 delivered" in browser.find_element(By.ID, "latency-summary").text
    # Chart.js drew on the canvas: some pixels are not blank.
    painted = browser.execute_script(
        "const c = document.getElementById('chart-flow'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4)"
        " if (d[i]) n++; return n;")
    assert painted > 500
    shot(browser, "dashboard.png")
