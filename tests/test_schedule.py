"""The sweep's schedule (redraw/followup/schedule.py), a pure function: property tests.

Whatever VOD says (Progress honest, 0 until the end, jumping, stalling, going backwards, missing,
over 100), every task gets its next check within the old ladder's wait, never sooner than the load
allows, and a task whose Progress is honest is noticed just after its end."""
from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from redraw.followup import schedule
from redraw.followup.schedule import Knobs, Load, Seen

KNOBS = Knobs()
T0 = 1_800_000_000.0

statuses = st.sampled_from(["WAITING", "PROCESSING", "", "FINISH", "weird"])
progresses = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-50, 500),
                       st.booleans())
loads = st.builds(Load, st.integers(0, 20_000), st.floats(0.1, 1000.0))
ages = st.floats(0.0, 3 * 86400.0)


@st.composite
def observations(draw):
    created = T0
    at = created + draw(ages)
    begin = draw(st.one_of(st.none(), st.floats(created - 120.0, at + 60.0)))
    prev_at = draw(st.one_of(st.none(), st.floats(created, at)))
    return created, Seen(at, draw(statuses), draw(progresses), begin, prev_at, draw(progresses), draw(statuses))


@settings(max_examples=600, deadline=None)
@given(observations(), loads)
def test_every_task_gets_a_next_check_no_later_than_the_old_ladder(obs, load):
    created, seen = obs
    when, why = schedule.next_check(created, seen, load, KNOBS)
    age = seen.at - created
    gap = when - seen.at
    assert math.isfinite(when) and why in (schedule.PREDICTED, schedule.BY_AGE)
    assert 0 < gap <= max(KNOBS.min_gap, min(KNOBS.max_interval, age)) + 1e-6  # the old ladder's wait
    assert gap >= min(schedule.min_gap(load, KNOBS), schedule.ladder_gap(age, KNOBS)) - 1e-6  # not too often


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 86400.0), st.one_of(st.none(), st.floats(0.0, 86400.0)), loads)
def test_a_task_without_an_observation_is_scheduled_by_age_within_the_old_ladder(age, since, load):
    created = T0
    last = None if since is None else created + since
    when, why = schedule.next_check(created, None, load, KNOBS, last_checked=last)
    start = created if last is None else last
    assert why == schedule.BY_AGE and when > start - 1e-6
    # the old sweep would check it at most a minute (its first sweep) or its age (later) after `start`
    assert when - start <= max(6 * KNOBS.first_check, min(KNOBS.max_interval, start - created)) + 1e-6


@settings(max_examples=300, deadline=None)
@given(st.lists(ages, min_size=1, max_size=200), st.floats(1.0, 1000.0), st.integers(1, 50_000))
def test_tasks_scheduled_by_age_ask_for_no_more_than_the_budget(task_ages, rps, in_flight):
    """Every task older than the spacing, scheduled by age: together they ask for at most the budget
    (younger ones are bounded by the old ladder, as before, and so are all when the spacing is beyond
    max_interval, 30,000 tasks at 100/s; the sweep's pacer caps the rest)."""
    load = Load(in_flight, rps)
    assume(load.spacing <= KNOBS.max_interval)
    old = [a for a in task_ages if a >= load.spacing and a >= KNOBS.min_gap]
    demand = sum(1.0 / schedule.age_gap(a, load, KNOBS) for a in old) * in_flight / len(task_ages)
    assert demand <= rps * (1 + 1e-9) or not old


LIGHT = Load(100, 100.0)


def follow(created, end, progress_at, load=LIGHT, begin=None, knobs=KNOBS, limit=10_000):
    """Check one task as the sweep would, with VOD answering ``progress_at(t)`` while it runs; the time
    at which its end is noticed, and the checks it took."""
    seen, last, checks = None, created, 0
    while checks < limit:
        when, _ = schedule.next_check(created, seen, load, knobs, last_checked=last)
        assert when > (seen.at if seen else created - 1) and when - (seen.at if seen else last) <= 3600
        checks += 1
        if when >= end:
            return when, checks
        status = "PROCESSING" if begin is None or when >= begin else "WAITING"
        p = progress_at(when)
        seen = seen.then(when, status, p, begin) if seen else Seen(when, status, p, begin)
        last = when
    raise AssertionError("never noticed")


@settings(max_examples=300, deadline=None)
@given(st.floats(60.0, 600.0), st.floats(0.02, 0.5), st.sampled_from([Load(300, 100.0), Load(6000, 100.0)]))
def test_honest_progress_is_noticed_just_after_the_end(duration, wait_share, load):
    """Light load (300 in flight): within the shortest gap; the worst case (6,000 in flight at 100/s):
    within its wider gap, in a handful of checks."""
    created = T0
    begin = created + wait_share * duration
    end = created + duration

    def progress(t):
        return max(0, min(99, int(100 * (t - begin) / (end - begin)))) if t >= begin else 0

    noticed, checks = follow(created, end, progress, load=load, begin=begin)
    # within the shortest gap, plus (at load, where the check aims at the central estimate) what an
    # integer Progress cannot tell: one point of the processing time
    resolution = 0.01 * (end - begin) if load.in_flight == 6000 else 0.0
    assert noticed - end <= schedule.min_gap(load, KNOBS) + KNOBS.margin + resolution + 1e-6, (noticed - end, checks)
    if load.in_flight == 6000:  # at most ~4 by age while it waits (up to half its length), ~6 processing
        assert checks <= 10, checks


faults = st.sampled_from(["silent", "stall", "jump", "backwards", "missing", "over", "noise"])


@settings(max_examples=400, deadline=None)
@given(faults, st.floats(60.0, 3600.0), st.integers(0, 2**32), loads)
def test_whatever_progress_says_the_end_is_noticed_no_later_than_the_old_ladder(fault, duration, seed, load):
    import random

    created = T0
    begin = created + 0.1 * duration
    end = created + duration
    rng = random.Random(seed)
    stall = rng.uniform(1, 99)

    def progress(t):
        honest = 100 * (t - begin) / (end - begin)
        return {"silent": 0, "stall": min(honest, stall), "jump": 0 if honest < stall else 99,
                "backwards": honest - rng.uniform(0, 60), "missing": None, "over": 100 + honest,
                "noise": honest + rng.gauss(0, 10)}[fault]

    noticed, checks = follow(created, end, progress, load=load, begin=begin)
    old_wait = max(KNOBS.min_gap, min(KNOBS.max_interval, duration))
    assert noticed - end <= old_wait + 1e-6


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 99.0), st.floats(1.0, 600.0), loads)
def test_a_prediction_is_never_sooner_than_the_load_allows(p, elapsed, load):
    created = T0
    begin = created + 5.0
    seen = Seen(begin + elapsed, "PROCESSING", p, begin)
    when, _ = schedule.next_check(created, seen, load, KNOBS)
    age = seen.at - created
    assert when - seen.at >= min(schedule.min_gap(load, KNOBS), schedule.ladder_gap(age, KNOBS)) - 1e-6


def test_at_load_the_gaps_widen_and_the_first_check_waits():
    light, heavy = Load(100, 100.0), Load(6000, 100.0)
    assert schedule.age_gap(300, heavy, KNOBS) >= 60 > schedule.age_gap(300, light, KNOBS)
    assert schedule.next_check(T0, None, heavy, KNOBS)[0] - T0 == 60
    assert schedule.next_check(T0, None, light, KNOBS)[0] - T0 == KNOBS.first_check
