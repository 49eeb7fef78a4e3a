"""The search for the latency benchmark's maximum rate (``bench/latency.py``): which rate to probe
next, and which rate the probes so far support, without running an engine."""

from __future__ import annotations

import pytest

from bench.latency import (
    BRACKET,
    NOW,
    SCHEDULED,
    STEP_DOWN,
    STEP_UP,
    bracket,
    next_probe,
    open_stream,
    steady_pace,
)


def search(capacity: float, first: float, budget: int = 6) -> tuple[float | None, list[float]]:
    """The search against an engine that keeps up exactly up to ``capacity``: its maximum and probes."""
    verdicts: list[tuple[float, bool]] = []
    while len(verdicts) < budget and (rate := next_probe(verdicts, first)) is not None:
        verdicts.append((rate, rate <= capacity))
    return bracket(verdicts)[0], [rate for rate, _ in verdicts]


def test_the_first_probe_is_the_first_guess() -> None:
    assert next_probe([], 136.2) == 136.2


def test_while_every_probe_kept_up_the_next_is_faster_than_the_fastest() -> None:
    assert next_probe([(100.0, True), (80.0, True)], 100.0) == round(100.0 * STEP_UP, 1)


def test_while_no_probe_kept_up_the_next_is_slower_than_the_slowest() -> None:
    assert next_probe([(100.0, False), (120.0, False)], 120.0) == round(100.0 * STEP_DOWN, 1)


def test_between_a_rate_that_kept_up_and_one_that_fell_behind_the_next_is_their_geometric_middle() -> None:
    assert next_probe([(136.0, False), (108.8, True)], 136.0) == pytest.approx(121.6, abs=0.1)


def test_the_search_ends_once_the_bracket_is_narrow() -> None:
    assert next_probe([(130.0, False), (125.0, True)], 130.0) is None
    assert next_probe([(130.0, False), (120.0, True)], 130.0) is not None


def test_a_slower_probe_that_fell_behind_lowers_the_maximum() -> None:
    # 120/s kept up, but 110/s (run later, a hiccup or a neighbour) did not: 120 is not trusted.
    assert bracket([(120.0, True), (140.0, False), (110.0, False), (100.0, True)]) == (100.0, 110.0)


def test_without_a_probe_that_kept_up_there_is_no_maximum() -> None:
    assert bracket([(100.0, False), (80.0, False)]) == (None, 80.0)
    assert bracket([]) == (None, None)


@pytest.mark.parametrize("first_share", [0.7, 0.85, 1.0, 1.2, 1.5])
@pytest.mark.parametrize("capacity", [40.0, 131.0, 400.0])
def test_six_probes_find_the_capacity_within_the_bracket_from_a_first_guess_within_half_of_it(
        capacity: float, first_share: float) -> None:
    maximum, probes = search(capacity, round(capacity * first_share, 1))

    assert next_probe([(rate, rate <= capacity) for rate in probes], probes[0]) is None, probes
    assert maximum is not None and capacity / (1 + BRACKET) <= maximum <= capacity, probes


def test_the_stream_keeps_its_session_pace_to_the_end() -> None:
    # 100 slots a second for 10 s, half scheduled 2 s ahead: over the last 2 s the scheduled slots
    # stay empty, so the sessions starting each second there (the immediate creates, and the
    # scheduled ones made 2 s earlier) are as many as in the steady middle; before, those slots
    # were immediate creates and 150 sessions a second started there.
    due, kinds = open_stream(10.0, 100.0, 0.5, 2.0)

    def sessions_started(begin: float, end: float) -> int:
        return sum(1 for at, kind in zip(due, kinds, strict=True)
                   if begin <= (at + 2.0 if kind == SCHEDULED else at) < end)

    assert sessions_started(4.0, 6.0) == 200
    assert sessions_started(8.0, 10.0) == 200
    assert all(kind == NOW for at, kind in zip(due, kinds, strict=True) if at > 8.0)
    assert sum(kind == SCHEDULED for kind in kinds) == 400  # slots 1, 3, ... 799: the last due at 7.99 s
    assert due == sorted(due) and len(due) == len(kinds) == 1000 - 100


def stream_lifetimes(rate: float, seconds: float, capacity: float, base: float = 0.05) -> list[tuple[float, float]]:
    """(start, lifetime) of a stream at ``rate`` served first come first served at ``capacity``."""
    free, out = 0.0, []
    for index in range(round(rate * seconds)):
        start = index / rate
        free = max(free, start) + 1 / capacity
        out.append((start, free - start + base))
    return out


def test_an_engine_with_room_to_spare_kept_up() -> None:
    pace = steady_pace(stream_lifetimes(200.0, 8.0, capacity=220.0), 2.0, 8.0)
    assert pace["kept_up"] is True
    assert pace["steady_started"] == 1200 and pace["steady_completed"] == 1200


def test_an_engine_slower_than_the_stream_fell_behind_and_its_own_pace_is_reported() -> None:
    # 275/s offered, 221/s served (a quiet run's probe: the former verdict passed it, its backlog
    # having grown early and then slowly): completions in the steady part are 4/5 of the starts.
    lifetimes = stream_lifetimes(275.0, 8.0, capacity=221.0)
    pace = steady_pace(lifetimes, 2.0, 8.0)
    assert pace["kept_up"] is False
    assert pace["steady_completed_per_second"] == pytest.approx(221.0, abs=2.0)


def test_a_stream_just_over_the_engine_fell_behind_and_just_under_kept_up() -> None:
    assert steady_pace(stream_lifetimes(230.0, 8.0, capacity=221.0), 2.0, 8.0)["kept_up"] is False
    assert steady_pace(stream_lifetimes(215.0, 8.0, capacity=221.0), 2.0, 8.0)["kept_up"] is True


def test_too_few_starts_say_nothing() -> None:
    assert steady_pace(stream_lifetimes(3.0, 3.0, capacity=100.0), 1.0, 3.0)["kept_up"] is None
