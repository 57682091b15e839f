"""egress.health: a failing gateway is skipped, then probed by exactly one attempt."""
import pytest

from egress.health import GatewayHealth, HealthState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def health(clock):
    return GatewayHealth(failure_threshold=3, down_for_s=60, clock=clock)


def test_unknown_gateway_is_up(health):
    assert health.is_usable("gw1")
    assert health.state("gw1") == HealthState("up", 0, None)


def test_down_after_threshold_consecutive_failures(health, clock):
    health.record_failure("gw1")
    health.record_failure("gw1")
    assert health.is_usable("gw1") and health.state("gw1").status == "up"
    health.record_failure("gw1")
    assert not health.is_usable("gw1")
    assert health.state("gw1") == HealthState("down", 3, 1060.0)
    assert health.is_usable("gw2")  # per gateway


def test_success_resets_the_count(health):
    for _ in range(2):
        health.record_failure("gw1")
    health.record_success("gw1")
    for _ in range(2):
        health.record_failure("gw1")
    assert health.is_usable("gw1")


def test_one_probe_after_down_period(health, clock):
    for _ in range(3):
        health.record_failure("gw1")
    clock.now += 59.9
    assert not health.is_usable("gw1")
    clock.now += 0.1
    assert health.is_usable("gw1")  # the probe
    assert not health.is_usable("gw1") and not health.is_usable("gw1")
    assert health.state("gw1").status == "probing"


def test_probe_success_brings_it_up(health, clock):
    for _ in range(3):
        health.record_failure("gw1")
    clock.now += 60
    assert health.is_usable("gw1")
    health.record_success("gw1")
    assert health.is_usable("gw1") and health.is_usable("gw1")
    assert health.state("gw1") == HealthState("up", 0, None)


def test_probe_failure_keeps_it_down_for_another_period(health, clock):
    for _ in range(3):
        health.record_failure("gw1")
    clock.now += 60
    assert health.is_usable("gw1")
    clock.now += 5
    health.record_failure("gw1")
    assert health.state("gw1") == HealthState("down", 4, 1125.0)
    clock.now += 59
    assert not health.is_usable("gw1")
    clock.now += 1
    assert health.is_usable("gw1")


def test_late_failures_while_down_do_not_extend(health, clock):
    for _ in range(3):
        health.record_failure("gw1")
    clock.now += 30
    health.record_failure("gw1")  # a session started before the trip
    clock.now += 30
    assert health.is_usable("gw1")


def test_lost_probe_is_replaced_after_another_period(health, clock):
    for _ in range(3):
        health.record_failure("gw1")
    clock.now += 60
    assert health.is_usable("gw1")  # probe never reports
    clock.now += 59
    assert not health.is_usable("gw1")
    clock.now += 1
    assert health.is_usable("gw1")
    assert not health.is_usable("gw1")


def test_threshold_one(clock):
    h = GatewayHealth(failure_threshold=1, down_for_s=10, clock=clock)
    h.record_failure("gw")
    assert not h.is_usable("gw")


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"down_for_s": 0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        GatewayHealth(**kwargs)


def test_default_clock_is_monotonic():
    h = GatewayHealth()
    for _ in range(3):
        h.record_failure("gw")
    assert not h.is_usable("gw")
