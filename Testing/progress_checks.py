"""Checks every long command's ``--progress`` test shares: the protocol lines parse, never go back and end at 100,
and the human bar shows the same events (the same stages and percentages, fewer of them in a log)."""

from __future__ import annotations

import re
from typing import List, Tuple

from SpineMetSegLib.progress import BAR_WIDTH, PROGRESS_PREFIX, parse_progress

# What ``ProgressBar`` draws: "<stage> [#####.....]  45% <message>".
BAR_LINE = re.compile(r"^(\S+) \[([#.]{" + str(BAR_WIDTH) + r"})\] +(\d+)%(?: (.*))?$")

Event = Tuple[str, float, str]


def protocol_events(text: str) -> List[Event]:
    """The events of the protocol lines in ``text`` (other lines are free text); every line that starts with the
    prefix must parse."""
    events = []
    for line in text.splitlines():
        if line.startswith(PROGRESS_PREFIX):
            report = parse_progress(line)
            assert report is not None, f"a protocol line that does not parse: {line!r}"
            events.append((report.stage, report.percent, report.message))
    return events


def check_protocol(text: str) -> List[Event]:
    """Assert that ``text`` holds protocol lines whose percentages never go down and end at 100; return them."""
    events = protocol_events(text)
    assert events, f"no {PROGRESS_PREFIX} lines in:\n{text[-2000:]}"
    percents = [percent for _, percent, _ in events]
    assert percents == sorted(percents), f"progress went back: {percents}"
    assert all(0 <= percent <= 100 for percent in percents)
    assert percents[-1] == 100, events[-3:]
    return events


def bar_events(text: str) -> List[Event]:
    """The events the bar lines in ``text`` show; each bar is filled as far as its percentage says."""
    events = []
    for line in text.replace("\r", "\n").splitlines():
        match = BAR_LINE.match(line.rstrip())
        if match:
            stage, bar, percent, message = match.groups()
            assert bar.count("#") == BAR_WIDTH * int(percent) // 100, line
            events.append((stage, float(percent), message or ""))
    return events


def check_bar_shows_the_protocol(bar_text: str, protocol: List[Event]) -> List[Event]:
    """Assert that the bar in ``bar_text`` draws the protocol's events (stage and percent): in the same order, a
    subset of them (a bar in a log draws one line per 5 %), every stage of them, and the same last one. Return
    the bar's events."""
    bar = bar_events(bar_text)
    assert bar, f"no progress bar in:\n{bar_text[-2000:]}"
    shown, expected = [event[:2] for event in bar], [event[:2] for event in protocol]  # messages may name times
    remaining = iter(expected)
    for event in shown:
        assert any(event == other for other in remaining), f"the bar shows {event}, which the protocol has not " \
                                                           f"(in that order): {expected}"
    assert {stage for stage, _ in shown} == {stage for stage, _ in expected}
    assert shown[-1] == expected[-1]
    return bar
