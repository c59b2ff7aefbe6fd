"""The fuzz tally, printed at the end of the session (events per handler, unhandled exceptions)."""

from __future__ import annotations

from . import tally


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if tally.EVENTS:
        terminalreporter.write_line(tally.summary())
