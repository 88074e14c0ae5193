"""A skipped test is a failed check: the run fails when a test is skipped for a reason not listed below.

Loaded by pytest for every run (``-p skipguard`` in pyproject.toml). What may be skipped on a machine that ran the
set-up (``scripts/setup.sh``) is listed here, each with why; ``--allow-skips`` (or ``RUNYARD_ALLOW_SKIPS=1``) lifts
the guard for a partial run on a machine without the set-up.
"""
from __future__ import annotations

import os
import re

import pytest

EXPECTED_SKIPS: dict[str, str] = {
    # no GPU on the CI machine: the GPU paths are unit-tested on their requests and checked on a lent GPU machine
    r"\bno GPU\b|\bneeds a GPU\b": "the machine has no GPU",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--allow-skips", action="store_true",
                     help="do not fail the run when tests are skipped for reasons the skip guard does not expect")


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return re.sub(r"^Skipped: ", "", text)


def expected(reason: str) -> bool:
    return any(re.search(pattern, reason) for pattern in EXPECTED_SKIPS)


def _unexpected(config: pytest.Config) -> list[tuple[str, str]]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.getoption("--allow-skips") or os.environ.get("RUNYARD_ALLOW_SKIPS") == "1":
        return []
    found = []
    for report in reporter.stats.get("skipped", []):
        reason = skip_reason(report)
        if not expected(reason):
            found.append((report.nodeid, reason))
    return found


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    unexpected = _unexpected(config)
    if unexpected:
        terminalreporter.section("unexpected skips (a skipped test is a failed check)", red=True)
        for nodeid, reason in unexpected:
            terminalreporter.line(f"{nodeid}: {reason}", red=True)
        terminalreporter.line("install what is missing (bash scripts/setup.sh), or list the reason in "
                              "tests/skipguard.py with why it is expected")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.OK and _unexpected(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
