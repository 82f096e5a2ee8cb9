"""Emulated time: held for a lagging simulation, but never handed out twice backwards."""

from __future__ import annotations

import time

from dc_to_core.emulator.clock import EmulatedClock


def test_hold_freezes_time_without_going_back_past_what_clients_saw():
    clock = EmulatedClock(scale=1000.0)
    time.sleep(0.05)
    seen = clock.now()                       # e.g. a query status said "finished" at this time
    clock.hold(limit=seen - 40.0)            # the simulation is 40 emulated s behind
    assert clock.now() >= seen               # a finished query never becomes running again
    assert clock.held_wall_s > 0 or clock.now() - seen < 1.0
    first = clock.now()
    time.sleep(0.01)
    assert clock.now() > first               # and time goes on afterwards


def test_hold_waits_for_the_simulation_when_nothing_was_handed_out_past_it():
    clock = EmulatedClock(scale=1000.0)
    start = clock.now()
    time.sleep(0.05)                         # 50 emulated s pass unseen
    clock.hold(limit=start + 10.0)
    assert clock.now() < start + 20.0
    assert clock.held_wall_s > 0.03
