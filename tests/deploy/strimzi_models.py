"""Strimzi's KafkaTopic and KafkaUser (kafka.strimzi.io/v1beta2), as far as orderflow's
component uses them, transcribed from the CustomResourceDefinitions Strimzi's cluster
operator installs (kafkatopics.kafka.strimzi.io, kafkausers.kafka.strimzi.io): every field
it sets, its type and its enum, and nothing else (an unknown field fails). No package on
PyPI ships models of Strimzi's CRDs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(_Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class KafkaTopicSpec(_Strict):
    topicName: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    replicas: int | None = Field(default=None, ge=1, le=32767)
    config: dict[str, str | int | float | bool] | None = None


class KafkaTopic(_Strict):
    apiVersion: Literal["kafka.strimzi.io/v1beta2"]
    kind: Literal["KafkaTopic"]
    metadata: Metadata
    spec: KafkaTopicSpec


class Authentication(_Strict):
    type: Literal["tls", "tls-external", "scram-sha-512"]


class AclResource(_Strict):
    type: Literal["topic", "group", "cluster", "transactionalId"]
    name: str | None = None
    patternType: Literal["literal", "prefix"] | None = None


Operation = Literal["Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                    "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"]


class AclRule(_Strict):
    type: Literal["allow", "deny"] | None = None
    resource: AclResource
    host: str | None = None
    operations: list[Operation] = Field(min_length=1)


class Authorization(_Strict):
    type: Literal["simple"]
    acls: list[AclRule]


class KafkaUserSpec(_Strict):
    authentication: Authentication | None = None
    authorization: Authorization | None = None


class KafkaUser(_Strict):
    apiVersion: Literal["kafka.strimzi.io/v1beta2"]
    kind: Literal["KafkaUser"]
    metadata: Metadata
    spec: KafkaUserSpec
