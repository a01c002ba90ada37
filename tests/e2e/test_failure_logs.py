"""A failing test that ran real processes shows their logs, whatever shape its fixture has."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

pytest_plugins = ["tests.platform"]


class Running:
    def logs(self):
        return "--- web ---\\nthe web said: disk full"


@pytest.fixture
def zero_setup():
    yield Running(), {"Authorization": "Bearer x"}, "/tmp", None


@pytest.fixture
def production():
    yield Running()
"""


@pytest.mark.parametrize("fixture", ["zero_setup", "production"])
def test_a_failing_test_reports_its_platform_logs_instead_of_crashing_the_run(
    pytester: pytest.Pytester, fixture: str
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(f"def test_fails({fixture}):\n    assert False, 'the job never succeeded'\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"*{fixture} logs*", "*the web said: disk full*"])
