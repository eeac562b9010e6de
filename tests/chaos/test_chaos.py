"""The short chaos run (part of ``make test`` and CI): each scenario of ``SHORT`` against the
test broker, judged by the oracle. ``make chaos`` runs the long set with a summary table."""

from __future__ import annotations

import pytest

from tests.chaos.runner import Scenario, run_scenario
from tests.chaos.scenarios import SHORT

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", SHORT, ids=[s.name for s in SHORT])
async def test_short_chaos_scenario(
    scenario: Scenario, kafka_bootstrap: str, request: pytest.FixtureRequest
) -> None:
    # The session's registry only for the scenarios that use one (it is started on demand).
    registry = request.getfixturevalue("registry_url") if scenario.registry else None
    result = await run_scenario(scenario, kafka_bootstrap, registry_url=registry)
    assert result.ok, result.report()
    assert result.kills == scenario.kills
    assert result.outages == scenario.broker_outages
    if any("bad_row_rate" in phase.faults for phase in scenario.phases):
        assert result.bad_rows > 0, "no bad row was injected: the bad-row phase did not run"
