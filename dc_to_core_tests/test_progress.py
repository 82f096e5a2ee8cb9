"""The long commands' progress: plain lines when stderr is not a terminal, rich's bar when
it is."""

from __future__ import annotations

import io
import sys

import pytest

from dc_to_core.progress import progress


def test_plain_lines_are_the_first_and_the_last_not_every_step(capsys):
    with progress("seeding Data Cloud", 2_000, "rows") as bar:
        for done in range(0, 2_001, 10):
            bar.update(done)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "seeding Data Cloud: 0/2,000 rows (0%)"
    assert lines[-1].startswith("seeding Data Cloud: 2,000/2,000 rows (100%), done in ")
    assert len(lines) < 10


def test_a_step_of_unknown_length_says_it_started_and_ended(capsys):
    with progress("planning Opportunity"):
        pass
    assert capsys.readouterr().err.splitlines()[0] == "planning Opportunity ..."


def test_a_failure_says_how_far_it_got(capsys):
    with pytest.raises(RuntimeError), progress("materializing partitions", 4) as bar:
        bar.advance(detail="Account p00")
        raise RuntimeError("boom")
    err = capsys.readouterr().err
    assert err.splitlines() == ["materializing partitions: 0/4 (0%)",
                                "materializing partitions: 1/4 (25%) Account p00"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_is_a_bar(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("materializing partitions", 4, "partitions") as bar:
        bar.advance(detail="Opportunity p01")
    drawn = terminal.getvalue()
    assert "materializing partitions" in drawn and "1/4" in drawn and "Opportunity p01" in drawn
    assert "done in" not in drawn  # the bar, not the plain lines
