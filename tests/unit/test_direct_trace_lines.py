"""What `mailgate trace` and the admin page's trace say about direct delivery (issue #36): the routed record names the recipient domain,
each attempt the MX host it connected to."""
from __future__ import annotations

from mailgate.ops.audit.reader import _details
from mailgate.ops.tracking.readable import readable
from schemas import DeliveryAttempted, MessageRouted, Route


def test_a_direct_route_and_attempt_name_the_domain_and_the_mx_host():
    routed = MessageRouted(message_id="M", occurred_at=1, node="n", direction="outbound",
                           route=Route(kind="direct", destination="two.test", candidates=[], hosts=[]),
                           mail_from="a@s.test", recipients=["x@two.test"], received_at=1, not_before=1, expires_at=2)
    assert readable(routed)["title"] == "Routed to the MX hosts of two.test (direct)"
    attempt = DeliveryAttempted(message_id="M", occurred_at=1, node="n", attempt=1, gateway="two.test",
                                host="127.0.0.12", port=25, recipients=["x@two.test"], results=[], duration_ms=3,
                                mx_host="mx2.two.test")
    assert readable(attempt)["title"] == "Delivery attempt 1 to two.test via MX mx2.two.test at 127.0.0.12:25"
    assert _details(attempt).startswith("attempt=1 via two.test mx=mx2.two.test 127.0.0.12:25")  # mailgate trace
    gateway = DeliveryAttempted(message_id="M", occurred_at=1, node="n", attempt=1, gateway="relay",
                                host="10.0.0.1", port=25, recipients=["x@two.test"], results=[], duration_ms=3)
    assert readable(gateway)["title"] == "Delivery attempt 1 via gateway relay at 10.0.0.1:25"
