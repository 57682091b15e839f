"""egress.errors: each failure mode says whether mail waits or bounces, and at which step; no password leaks."""
import pytest

from egress.errors import (STEPS, AuthFailed, ConnectFailed, ConnectionLostAfterData, DeliveryError,
                           ProtocolTimeout, ServerReplied, TlsFailed)
from mailgate.mail.smtp_reply import Reply

PASSWORD = "s3cr3t-Pa55"


@pytest.mark.parametrize("cls", [ConnectFailed, TlsFailed, AuthFailed, ProtocolTimeout, ConnectionLostAfterData])
def test_transient_by_class(cls):
    assert issubclass(cls, DeliveryError)
    assert cls.transient is True
    assert cls().transient is True


def test_default_steps():
    assert ConnectFailed("refused").step == "connect"
    assert TlsFailed.not_offered().step == "starttls"
    assert AuthFailed().step == "auth"
    assert ConnectionLostAfterData().step == "data"
    assert ProtocolTimeout(step="rcpt").step == "rcpt"


def test_steps_are_the_session_order():
    assert STEPS == ("connect", "greeting", "ehlo", "starttls", "auth", "mail", "rcpt", "data")


def test_unknown_step_is_refused():
    with pytest.raises(ValueError):
        ConnectFailed("x", step="helo")  # type: ignore[arg-type]


def test_server_replied_transient_follows_reply():
    soft = ServerReplied(Reply.parse(451, "4.3.0 try later"), step="rcpt")
    hard = ServerReplied(Reply.parse(550, "5.1.1 no such user"), step="rcpt")
    assert soft.transient is True and hard.transient is False
    assert hard.reply.enhanced_code == "5.1.1"
    assert str(hard) == "rcpt: 550 5.1.1 no such user"


def test_server_replied_unexpected_code_waits():
    assert ServerReplied(Reply.parse(-1, "Malformed SMTP response line"), step="greeting").transient is True


def test_server_replied_needs_a_step():
    with pytest.raises(TypeError):
        ServerReplied(Reply.parse(550, "no"))  # type: ignore[call-arg]


def test_auth_failed_is_transient_even_on_535():
    err = AuthFailed(reply=Reply.parse(535, "5.7.8 Authentication credentials invalid"))
    assert err.transient is True
    assert err.reply is not None and err.reply.is_permanent()
    assert str(err) == "auth: 535 5.7.8 Authentication credentials invalid"


def test_tls_failed_says_which():
    assert "not offered" in str(TlsFailed.not_offered())
    err = TlsFailed.handshake("certificate verify failed: unable to get local issuer certificate")
    assert "handshake failed" in str(err) and "certificate verify failed" in str(err)


def test_protocol_timeout_names_the_limit():
    assert str(ProtocolTimeout(timeout_s=60, step="greeting")) == "greeting: no reply within 60s"


def test_connection_lost_after_data_documents_duplicate_risk():
    err = ConnectionLostAfterData("connection reset after final dot")
    assert err.may_have_been_delivered is True and err.transient is True
    assert "duplicate" in (ConnectionLostAfterData.__doc__ or "")


@pytest.mark.parametrize("make", [
    lambda: AuthFailed(f"login as bob with {PASSWORD} refused", secrets=[PASSWORD]),
    lambda: AuthFailed(reply=Reply.parse(535, f"5.7.8 bad password {PASSWORD}"), secrets=[PASSWORD]),
    lambda: ConnectFailed(f"smtp://bob:{PASSWORD}@relay:25 refused", secrets=[PASSWORD]),
    lambda: ServerReplied(Reply.parse(454, f"4.7.0 {PASSWORD}"), step="auth", secrets=[PASSWORD, ""]),
    lambda: ProtocolTimeout(PASSWORD, timeout_s=5, step="auth", secrets=[PASSWORD]),
])
def test_no_password_in_str_or_repr(make):
    err = make()
    for text in (str(err), repr(err), str(err.args), str(getattr(err, "reply", ""))):
        assert PASSWORD not in text
    assert "***" in str(err)


def test_catchable_as_one_family_and_raised_normally():
    with pytest.raises(DeliveryError) as info:
        raise ServerReplied(Reply.parse(552, "5.3.4 too big"), step="data")
    assert info.value.step == "data" and not info.value.transient
