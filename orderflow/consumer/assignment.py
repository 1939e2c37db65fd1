"""Which replica owns which input partition: an assignment that keeps partitions where they are.

aiokafka's default, round-robin, deals the partitions out in order on every rebalance, so one
replica more or less moves most of them, and each moved partition is restored on its new
owner (its tracking partition read whole: seconds at a million pairs). Here each member tells
the group's leader, in its join's user data, the partitions whose jobs it holds; the leader
keeps those where they are, within a balanced share, and deals out only the rest. A scale
step then moves the fewest partitions that balance allows: the share of the replica that
joins or leaves.

aiokafka's own StickyPartitionAssignor is not used: its state lives on the class (shared by
every consumer of a process), and aiokafka never hands it the generation it relies on to tell
a stale claim from a fresh one. Here a partition two members claim (one was thought gone
and came back) is nobody's, and is dealt out like a free one. Correctness never rests on the
assignor: the group decides who owns what, and a kept partition whose tracking partition
another owner wrote meanwhile is restored afresh (`PartitionOwner.assigned`).

aiokafka rebalances eagerly (it has no cooperative protocol): every rebalance still revokes
everything first, so a kept partition is closed (its running calls let finish) and opened
again, but not restored.

It is the only strategy offered. Offering round-robin after it, for a group not every member
of which knows it, would cost every rebalance a second JoinGroup: aiokafka 0.14 sends one per
strategy listed (aio-libs/aiokafka#1168), and a member whose second join changes its
protocols starts another rebalance round. The price is paid once, at the upgrade from a
release without it: Kafka keeps a replica of this release out of a group whose members offer
round-robin only, until they are gone (docs/runbook.md, "Safe rollout").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from orderflow.consumer.logging import get_logger

log = get_logger(__name__)

NAME = "orderflow-sticky"
VERSION = 0
# What a member's claim may hold: a larger or malformed one (anything that may join the group
# can write it) is read as no claim, never as an error in the leader.
MAX_CLAIM_BYTES = 64 * 1024

Claims = Mapping[str, Iterable[int]]


def encode_claims(claims: Claims) -> bytes:
    return json.dumps({"owned": {topic: sorted(set(partitions))
                                 for topic, partitions in sorted(claims.items())}},
                      separators=(",", ":")).encode()


def decode_claims(user_data: bytes | None) -> dict[str, set[int]]:
    """A member's claim, or no claim for anything that is not one."""
    if not user_data or len(user_data) > MAX_CLAIM_BYTES:
        return {}
    try:
        owned = json.loads(user_data)["owned"]
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return {}
    if not isinstance(owned, dict):
        return {}
    return {topic: {p for p in partitions if type(p) is int and p >= 0}
            for topic, partitions in owned.items()
            if isinstance(topic, str) and isinstance(partitions, list)}


def sticky_shares(partitions: Iterable[int], claims: Mapping[str, Iterable[int]]
                  ) -> dict[str, list[int]]:
    """One topic's partitions among its members (`claims`: each member's claim, empty for a
    member that holds nothing), balanced (shares differ by one at most) and moving the fewest
    partitions: the larger shares go to the members claiming most, each member keeps what it
    claims up to its share, the rest is dealt out. A partition claimed twice, or not existing,
    is nobody's claim. Deterministic: every leader would decide the same."""
    existing = set(partitions)
    members = sorted(claims)
    if not members:
        return {}
    claimed_by: dict[int, list[str]] = {}
    for member in members:
        for partition in set(claims[member]) & existing:
            claimed_by.setdefault(partition, []).append(member)
    kept_claims = {member: sorted(p for p in set(claims[member]) & existing
                                  if claimed_by[p] == [member])
                   for member in members}
    base, larger = divmod(len(existing), len(members))
    by_claim = sorted(members, key=lambda m: (-len(kept_claims[m]), m))
    quota = {member: base + (1 if rank < larger else 0) for rank, member in enumerate(by_claim)}
    shares = {member: kept_claims[member][:quota[member]] for member in members}
    taken = {p for share in shares.values() for p in share}
    free = iter(sorted(existing - taken))
    for member in members:
        while len(shares[member]) < quota[member]:
            shares[member].append(next(free))
    return {member: sorted(share) for member, share in shares.items()}


class StickyAssignor:
    """The assignment strategy one consumer offers: it claims what `claims()` says this
    replica holds, and when it leads the group, assigns by `sticky_shares`. An instance per
    consumer (aiokafka only needs its name, metadata, assign and on_assignment)."""

    name = NAME
    version = VERSION

    def __init__(self, claims: Callable[[], Claims]) -> None:
        self._claims = claims

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        subscribed = sorted(topics)
        claims = {topic: partitions for topic, partitions in self._claims().items()
                  if topic in subscribed}
        return ConsumerProtocolMemberMetadata(self.version, subscribed, encode_claims(claims))

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        claims = {member: decode_claims(metadata.user_data)
                  for member, metadata in members.items()}
        topics = sorted({topic for metadata in members.values()
                         for topic in metadata.subscription})
        assignment: dict[str, list[tuple[str, list[int]]]] = {member: [] for member in members}
        for topic in topics:
            partitions = cluster.partitions_for_topic(topic)
            if partitions is None:
                log.warning("no partition metadata for a subscribed topic", topic=topic)
                continue
            subscribers = {member: claims[member].get(topic, set())
                           for member, metadata in members.items()
                           if topic in metadata.subscription}
            for member, share in sticky_shares(partitions, subscribers).items():
                if share:
                    assignment[member].append((topic, share))
        return {member: ConsumerProtocolMemberAssignment(self.version, topics_of, b"")
                for member, topics_of in assignment.items()}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        """Nothing to remember: the claim is read from the replica when it next joins."""
