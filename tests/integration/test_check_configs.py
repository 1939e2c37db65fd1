"""`orderflow check` reads the topics' configs where the broker answers DescribeConfigs as
Kafka does (the strict lane): orderflow's own topics are reported compacted, and a tracking
topic created without compaction is a failure that names the fix."""

from __future__ import annotations

import pytest
from conftest import PARTITIONS, needs, service_env, settings_from
from test_operator_commands import orderflow

from orderflow.consumer.app import Application
from orderflow.sandbox.broker import create_topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka_semantics]


async def test_check_reads_compaction_from_the_broker(broker, topics, monkeypatch) -> None:
    needs(broker, "configs")
    env = service_env(broker, topics) | {"ORDERFLOW_ZAKEKE__ENABLED": "false",
                                         "ORDERFLOW_SMAKE__ENABLED": "false",
                                         "ORDERFLOW_REEVOO__ENABLED": "false"}
    app = Application(settings_from(env, monkeypatch))
    await app.start()  # creates the tracking and control topics, compacted
    await app.stop()
    code, out, err = await orderflow(env, "check")
    assert code == 0, out + err
    assert "PASS  topic tracking" in out and "compacted" in out
    assert "compaction not reported" not in out

    plain = f"{topics.tracking}.plain"
    await create_topics(broker.bootstrap_servers, [(plain, PARTITIONS, {"cleanup.policy": "delete"})])
    code, out, _ = await orderflow(env | {"ORDERFLOW_TOPICS__TRACKING": plain}, "check")
    assert code == 1 and "FAIL  topic tracking" in out and "not compacted" in out
