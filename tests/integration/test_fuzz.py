"""The short variant of `make fuzz`: a few thousand generated records through the real
intake on the embedded broker, generated answers through every adapter over real HTTP, and
hostile tracking and control records through restore and the control reader.
No crash, no stall, every record accounted for (see fuzz/intake.py for what is checked)."""

from __future__ import annotations

import pytest

from fuzz.answers import run_answers_fuzz
from fuzz.intake import run_intake_fuzz
from fuzz.internal import TRACKING_HOSTILE, run_internal_fuzz
from orderflow.sandbox.broker import SandboxBroker

pytestmark = pytest.mark.integration


async def test_generated_records_each_end_as_jobs_or_one_dead_letter(broker: SandboxBroker) -> None:
    report = await run_intake_fuzz(3_000, seed=11, broker=broker, stall_after_s=30, say=lambda _: None)
    assert report.passed, report.render()
    assert report.inputs == 3_000
    assert report.accepted > 500 and report.dead_lettered > 1_000, report.render()
    # Every named hostile kind was generated, and each was dead-lettered.
    from fuzz.records import HOSTILE
    for kind in HOSTILE:
        assert report.by_kind[kind]["dead_lettered"] > 0 and report.by_kind[kind]["accepted"] == 0, kind


async def test_generated_answers_end_as_observations_or_mapped_errors() -> None:
    report = await run_answers_fuzz(200, seed=11, say=lambda _: None)
    assert report.passed, report.render()
    assert sum(report.calls.values()) == 600


async def test_hostile_webhook_deliveries_are_refused_and_make_no_call(broker: SandboxBroker) -> None:
    from fuzz.webhooks import run_webhooks_fuzz

    report = await run_webhooks_fuzz(150, seed=11, broker=broker)
    assert report.passed, report.render()
    assert report.deliveries["forged"] > 100 and report.smake_requests_while_forged == 0
    assert report.smake_reads_after_genuine > 0 and report.healthy_at_end


async def test_hostile_internal_records_are_skipped_and_every_readable_pair_restored(
        broker: SandboxBroker) -> None:
    report = await run_internal_fuzz(6_000, seed=11, broker=broker, stall_after_s=60,
                                     say=lambda _: None)
    assert report.passed, report.render()
    assert report.kept > 1_000 and report.skipped_tracking > 500 and report.skipped_control > 100
    # The named kinds that are generated at this size were each skipped, never kept.
    for kind, counts in report.by_kind.items():
        if kind in TRACKING_HOSTILE:
            assert counts["kept"] == 0, kind
