"""mailgate.core.backoff: the one exponential back-off every stage retries with (Kafka, mail.config, spam scanners)."""
from mailgate.core.backoff import Backoff


async def test_waits_double_up_to_the_ceiling_and_start_again_after_a_reset():
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    backoff = Backoff(0.5, 5, sleep)
    for _ in range(6):
        await backoff.wait()
    assert slept == [0.5, 1, 2, 4, 5, 5]
    backoff.reset()
    assert backoff.delay_s == 0.5
    await backoff.wait()
    assert slept[-1] == 0.5 and backoff.delay_s == 1
