"""The chaos harness at CI size (`python -m chaos --short`; `make chaos` runs the full one).

Real processes only: the embedded broker, the simulators and three `orderflow run` replicas,
with SIGKILLs, a 1 -> 3 -> 1 -> 3 scaling by SIGTERM, a broker frozen with SIGSTOP, vendor
5xx, slow answers, 429 bursts, an outage, and poison records in the input. It asserts what
an operator would count afterwards: nothing lost, nothing created twice."""

from __future__ import annotations

import pytest

from chaos.harness import run_chaos
from chaos.plan import ChaosPlan
from orderflow.sandbox.broker import chosen_broker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


async def test_chaos_short_run_loses_nothing_and_duplicates_nothing(tmp_path):
    abilities = chosen_broker().abilities  # the one the harness will start
    if not abilities.evicts_dead_members:
        pytest.skip(f"the {abilities.name} broker never drops a replica that died "
                    f"(make test-strict runs chaos on it with one static replica)")
    report = await run_chaos(ChaosPlan.short(work_dir=tmp_path / "chaos"))
    print(report.render())  # the figures, in the test log (-ra shows them on failure)
    f = report.figures
    assert f["pairs_lost"] == 0
    assert f["pairs_several_terminals"] == 0
    assert f["duplicates"]["zakeke"] == 0
    assert f["duplicates"]["smake"] == 0
    assert f["duplicates"]["reevoo"] == f["reevoo_duplicates_by_kill"]
    assert f["dead_letters_distinct"] == f["poison_produced"] > 0
    assert f["kills"] >= 3 and f["broker_stalls"] >= 1
    assert f["replicas_exited_on_their_own"] == []
    assert "503" not in f["healthz_answers"]
    # One order, one flow: the artwork reached the printer, reviews waited for delivery,
    # every parcel was announced.
    assert f["artwork_lines_produced"] > 0 and f["smake_orders_in_several_parcels"] > 0
    assert f["flow_breaches"] == dict.fromkeys(f["flow_breaches"], 0)
    # Cancellations at every timing: none dead-lettered (the dead letters are the poison).
    assert f["cancellations_produced"] > 0 and f["pairs_cancelled"] > 0
    assert report.passed, report.failures
