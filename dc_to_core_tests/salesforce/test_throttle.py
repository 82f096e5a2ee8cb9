"""Progress lines throttled: the first at once, the last at the end, few in between."""

from __future__ import annotations

from dc_to_core.salesforce.throttle import Throttle, throttled


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_first_and_the_last_line_go_out_and_not_every_poll():
    lines: list[str] = []
    clock = Clock()
    throttle = Throttle(lines.append, interval_s=30, clock=clock)
    for poll in range(100):  # a poll every second for 100 s
        clock.now = float(poll)
        throttle(f"poll {poll}")
    throttle.flush()
    assert lines == ["poll 0", "poll 30", "poll 60", "poll 90", "poll 99"]
    throttle.flush()  # nothing held back: nothing said twice
    assert lines[-1] == "poll 99" and len(lines) == 5


def test_a_throttled_call_inside_another_shares_its_pace_and_the_outer_says_the_last_line():
    lines: list[str] = []
    with throttled(lines.append) as outer:
        assert isinstance(outer, Throttle)
        for job in ("a", "b"):
            with throttled(outer) as inner:
                assert inner is outer
                inner(f"job {job} InProgress")
                inner(f"job {job} JobComplete")
        assert lines == ["job a InProgress"]  # the rest came within 30 s of it
    assert lines == ["job a InProgress", "job b JobComplete"]


def test_no_callback_no_lines():
    with throttled(None) as report:
        assert report is None
