"""The limiter, the deadline and the retry loop, on a fake clock."""
from __future__ import annotations

import random

import pytest

from conftest import FakeClock
from redraw import policy
from redraw.errors import UpstreamError
from redraw.pacing import RateLimiter
from redraw.retries import Deadline, backoff, call_with_retries


def test_limiter_never_allows_more_than_rate_in_any_window():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(200):
        assert limiter.acquire(budget=60)
        sent.append(clock.now)
    for i, t in enumerate(sent):
        assert sum(1 for u in sent[i:] if u < t + 1.0) <= 20
    assert sent[-1] - sent[0] < 10.6  # still close to 20/s overall


def test_limiter_refuses_when_the_wait_exceeds_the_budget():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(0) and limiter.acquire(0)
    assert not limiter.acquire(0.5)
    assert limiter.acquire(2)


def test_pause_holds_everyone_back():
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock, sleep=clock.sleep)
    limiter.pause(0.7)
    assert limiter.acquire(5)
    assert clock.now == pytest.approx(1000.7)


def test_deadline_keeps_a_margin_of_at_most_half():
    clock = FakeClock()
    assert Deadline(10000, 1500, clock=clock).remaining() == pytest.approx(8.5)
    assert Deadline(2000, 1500, clock=clock).remaining() == pytest.approx(1.0)


def test_backoff_is_full_jitter_and_capped():
    rng = random.Random(1)
    waits = [backoff(n, rng) for n in range(1, 12) for _ in range(50)]
    assert min(waits) >= 0 and max(waits) <= 4.0
    assert len({round(w, 3) for w in waits}) > 100


def _failing(codes):
    calls = []

    def send(timeout):
        calls.append(timeout)
        code = codes[min(len(calls) - 1, len(codes) - 1)]
        if code == "ok":
            return "done"
        raise UpstreamError(code, "x", decision=policy.decide(code).kind)
    return send, calls


@pytest.mark.parametrize("codes, attempts, outcome", [
    (["InternalError", "ok"], 2, "done"),
    (["AuthFailure.SignatureFailure"], 1, "terminal"),
    (["SomethingNew"], 2, "terminal"),
    (["InternalError"], 3, "retry"),
    (["RequestLimitExceeded"] * 5 + ["ok"], 6, "done"),
])
def test_retry_loop_decisions(codes, attempts, outcome):
    clock = FakeClock()
    send, calls = _failing(codes)
    kwargs = dict(deadline=Deadline(600000, 0, clock=clock), limiter=RateLimiter(1000, clock=clock, sleep=clock.sleep),
                  max_attempts=3, http_timeout=5, rng=random.Random(0), sleep=clock.sleep)
    if outcome == "done":
        assert call_with_retries(send, **kwargs) == ("done", attempts)
    else:
        with pytest.raises(UpstreamError) as info:
            call_with_retries(send, **kwargs)
        assert info.value.decision == outcome and info.value.attempts == attempts
    assert len(calls) == attempts


def test_attempt_timeout_is_bounded_by_the_remaining_time():
    clock = FakeClock()
    send, calls = _failing(["Timeout"] * 10)
    with pytest.raises(UpstreamError):
        call_with_retries(send, deadline=Deadline(3000, 0, clock=clock),
                          limiter=RateLimiter(1000, clock=clock, sleep=clock.sleep), max_attempts=10,
                          http_timeout=5, rng=random.Random(0), sleep=clock.sleep)
    assert calls[0] == pytest.approx(3.0) and all(t <= 3.0 for t in calls)
