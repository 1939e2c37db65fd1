"""Topics and access as code (deploy/kubernetes/components/strimzi): the KafkaTopics are
orderflow's own topics as it would create them, and each KafkaUser is granted what its role
does, no more: the service (consume the input in its group, own the tracking and control
topics, publish the outputs) and the operator commands."""

from __future__ import annotations

from typing import Any

import pytest
from deploy_support import render

from orderflow.config.settings import KafkaSettings, TopicSettings

TOPICS = TopicSettings()
GROUP = KafkaSettings().group_id

# What each role does with each resource, from what its code calls (docs/deploy.md, "Access").
NEEDS: dict[str, dict[tuple[str, str], set[str]]] = {
    "orderflow": {
        ("topic", TOPICS.orders_created): {"Read", "Describe"},
        ("group", GROUP): {"Read", "Describe"},
        ("topic", TOPICS.tracking): {"Read", "Write", "Create", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.control): {"Read", "Write", "Create", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.status): {"Write", "Describe"},
        ("topic", TOPICS.print_files_ready): {"Write", "Describe"},
        ("topic", TOPICS.dead_letter): {"Write", "Describe"},
        ("cluster", ""): {"IdempotentWrite"},
    },
    "orderflow-operator": {
        ("topic", TOPICS.orders_created): {"Write", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.control): {"Read", "Write", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.tracking): {"Read", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.status): {"Read", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.print_files_ready): {"Read", "Describe", "DescribeConfigs"},
        ("topic", TOPICS.dead_letter): {"Read", "Describe", "DescribeConfigs"},
        ("group", GROUP): {"Describe"},
        ("cluster", ""): {"IdempotentWrite"},
    },
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render("strimzi")


def granted(user: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in user["spec"]["authorization"]["acls"]:
        assert rule["resource"].get("patternType", "literal") == "literal", "no prefix grants"
        assert rule.get("type", "allow") == "allow"
        key = (rule["resource"]["type"], rule["resource"].get("name", ""))
        found.setdefault(key, set()).update(rule["operations"])
    return found


@pytest.mark.parametrize("role", sorted(NEEDS))
def test_each_user_is_granted_exactly_what_its_role_does(objects, role: str) -> None:
    [user] = [o for o in objects if o["kind"] == "KafkaUser" and o["metadata"]["name"] == role]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert granted(user) == NEEDS[role]


def test_the_topics_are_compacted_durable_and_shaped_as_orderflow_needs(objects) -> None:
    topics = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "KafkaTopic"}
    assert set(topics) == {TOPICS.tracking, TOPICS.control}
    assert topics[TOPICS.control]["partitions"] == 1
    for spec in topics.values():
        assert spec["config"]["cleanup.policy"] == "compact"
        assert int(spec["config"]["min.insync.replicas"]) == spec["replicas"] - 1 >= 2
    # The tracking topic has the input's partitions; the example overlay's input has 12.
    env = next(o for o in objects if o["kind"] == "ScaledObject")
    assert topics[TOPICS.tracking]["partitions"] == int(env["spec"]["maxReplicaCount"])
