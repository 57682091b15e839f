"""mailgate.mail.outputs: an Output becomes one Kafka record — key, value and headers — the same way for aiokafka
(operator tools) and faust (the processor); the processor once dropped `Output.headers`."""
import asyncio

from mailgate.core import topics
from mailgate.mail.outputs import Output, append
from processors.runner import emit
from schemas import CachePurgeRequested, decode

HEADERS = (("supersedes", b"01OLD"),)


def purge() -> CachePurgeRequested:
    return CachePurgeRequested(occurred_at=1, node="n", operator="op", target=None, request_id="r1")


class _Topic:
    def __init__(self, name: str, sent: list) -> None:
        self.name, self.sent = name, sent

    async def send(self, **fields) -> None:
        self.sent.append((self.name, fields))


async def test_the_processor_sends_an_outputs_kafka_headers_with_its_key_and_value():
    sent: list = []
    await emit(lambda name: _Topic(name, sent), [Output(topics.CONTROL, "message/01M", purge(), HEADERS),
                                                 Output(topics.EVENTS, "01M", purge())])
    (first_topic, first), (second_topic, second) = sent
    assert first_topic == topics.CONTROL and first["headers"] == [("supersedes", b"01OLD")]
    assert first["key"] == b"message/01M" and decode(first["value"]) == purge()
    assert second_topic == topics.EVENTS and second["headers"] is None


class _Producer:
    def __init__(self) -> None:
        self.sent: list = []

    async def send(self, topic: str, **fields):
        self.sent.append((topic, fields))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_bytes_go_as_they_are_none_is_a_tombstone_and_an_empty_key_is_no_key():
    producer = _Producer()
    await append(producer, [Output(topics.DELIVERED, "01M|a@x.test", b"1"),
                            Output(topics.CONTROL, "message/01M", None, HEADERS), Output(topics.DLQ, "", purge())])
    (delivered, index), (control, tombstone), (dlq, dead) = producer.sent
    assert (delivered, index) == (topics.DELIVERED, {"key": b"01M|a@x.test", "value": b"1", "headers": None})
    assert (control, tombstone) == (topics.CONTROL, {"key": b"message/01M", "value": None,
                                                     "headers": [("supersedes", b"01OLD")]})
    assert dlq == topics.DLQ and dead["key"] is None and decode(dead["value"]) == purge()
