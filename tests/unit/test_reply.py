"""mailgate.mail.smtp_reply: parsing SMTP replies into values that decide retry versus bounce."""
import aiosmtplib
import pytest

from mailgate.mail.smtp_reply import Reply, from_aiosmtplib


def test_parse_extracts_and_strips_enhanced_code():
    r = Reply.parse(550, "5.1.1 <bob@example.com>: Recipient address rejected")
    assert r == Reply(550, "5.1.1", "<bob@example.com>: Recipient address rejected")
    assert str(r) == "550 5.1.1 <bob@example.com>: Recipient address rejected"


def test_parse_without_enhanced_code():
    r = Reply.parse(250, "mx.example.com Hello")
    assert r.enhanced_code is None and r.text == "mx.example.com Hello"
    assert str(r) == "250 mx.example.com Hello"


@pytest.mark.parametrize("text", ["5.1.1", "4.7.0 ", "2.0.0 Ok"])
def test_parse_code_alone_or_with_text(text):
    r = Reply.parse(int(text[0]) * 100 + 50, text)
    assert r.enhanced_code == text.split()[0]
    assert r.text == text[5:].strip()


@pytest.mark.parametrize("text", ["5.1.1x user", "3.1.1 nope", "5.1234.1 too long", "1.2.3.4 is an address"])
def test_things_that_are_not_enhanced_codes_stay_in_text(text):
    r = Reply.parse(550, text)
    assert r.enhanced_code is None and r.text == text


def test_multiline_reply_strips_repeated_code():
    r = Reply.parse(550, "5.7.1 Message rejected\n5.7.1 see https://example.com/policy")
    assert r.enhanced_code == "5.7.1"
    assert r.text == "Message rejected\nsee https://example.com/policy"
    assert str(r) == "550 5.7.1 Message rejected see https://example.com/policy"


@pytest.mark.parametrize("code,success,intermediate,transient,permanent", [
    (250, True, False, False, False),
    (354, True, True, False, False),
    (421, False, False, True, False),
    (451, False, False, True, False),
    (550, False, False, False, True),
    (554, False, False, False, True),
    (-1, False, False, False, False),
])
def test_classification_reads_basic_code(code, success, intermediate, transient, permanent):
    r = Reply.parse(code, "5.0.0 text")  # the enhanced class does not override the basic code
    assert (r.is_success(), r.is_intermediate(), r.is_transient(), r.is_permanent()) == (
        success, intermediate, transient, permanent)


def test_from_aiosmtplib_response():
    r = Reply.from_aiosmtplib(aiosmtplib.SMTPResponse(250, "2.0.0 Ok: queued as 12345"))
    assert r == Reply(250, "2.0.0", "Ok: queued as 12345")


@pytest.mark.parametrize("exc", [
    aiosmtplib.SMTPRecipientRefused(550, "5.1.1 no such user", "bob@example.com"),
    aiosmtplib.SMTPSenderRefused(550, "5.1.1 no such user", "alice@example.com"),
    aiosmtplib.SMTPResponseException(550, "5.1.1 no such user"),
    aiosmtplib.SMTPDataError(550, "5.1.1 no such user"),
])
def test_from_aiosmtplib_exceptions(exc):
    assert from_aiosmtplib(exc) == Reply(550, "5.1.1", "no such user")


def test_from_aiosmtplib_transient_exception():
    r = from_aiosmtplib(aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary authentication failure"))
    assert r.is_transient() and r.enhanced_code == "4.7.0"


@pytest.mark.parametrize("thing", [aiosmtplib.SMTPServerDisconnected("gone"), "250 ok", (250, "ok")])
def test_from_aiosmtplib_refuses_things_without_a_reply(thing):
    with pytest.raises(TypeError):
        from_aiosmtplib(thing)


def test_reply_is_frozen_and_hashable():
    r = Reply.parse(250, "Ok")
    with pytest.raises(AttributeError):
        r.code = 550  # type: ignore[misc]
    assert {r: 1}[Reply(250, None, "Ok")] == 1
