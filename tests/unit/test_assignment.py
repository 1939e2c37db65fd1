"""Which replica owns which input partition (consumer/assignment.py): every partition to exactly
one member, shares that differ by one at most, and the fewest partitions moved. A scale
sequence run through our assignor and through aiokafka's default (round-robin) counts the
moves of each; member claims, which anything that may join the group can write, are fuzzed."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterable

from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberMetadata
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.consumer.assignment import (
    NAME,
    StickyAssignor,
    decode_claims,
    encode_claims,
    sticky_shares,
)

TOPIC = "orders.created"


class Cluster:
    """What an assignor reads of the cluster's metadata: a topic's partition numbers."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self._partitions) if topic == TOPIC else None


def unique_claims(partitions: set[int], claims: dict[str, set[int]]) -> dict[str, set[int]]:
    counted = [p for claim in claims.values() for p in claim & partitions]
    return {m: {p for p in claim & partitions if counted.count(p) == 1}
            for m, claim in claims.items()}


def most_kept(partitions: set[int], claims: dict[str, set[int]]) -> int:
    """The most partitions any balanced assignment leaves with their (sole) claimant: every
    choice of the members that get the larger share, tried."""
    unique = unique_claims(partitions, claims)
    base, larger = divmod(len(partitions), len(claims))
    return max(sum(min(len(unique[m]), base + (m in bigger)) for m in claims)
               for bigger in itertools.combinations(claims, larger))


claims_strategy = st.integers(1, 24).flatmap(lambda n: st.tuples(
    st.just(n),
    st.dictionaries(st.uuids().map(str), st.sets(st.integers(-2, n + 2), max_size=n),
                    min_size=1, max_size=6)))


@settings(max_examples=400, deadline=None)
@given(claims_strategy)
def test_every_partition_goes_to_exactly_one_member_in_balanced_shares_keeping_the_most(case):
    n, claims = case
    partitions = set(range(n))
    shares = sticky_shares(partitions, claims)
    assert set(shares) == set(claims)
    dealt = [p for share in shares.values() for p in share]
    assert sorted(dealt) == sorted(partitions), "each partition exactly once"
    sizes = [len(share) for share in shares.values()]
    assert max(sizes) - min(sizes) <= 1, f"unbalanced: {sizes}"
    unique = unique_claims(partitions, claims)
    kept = sum(len(set(shares[m]) & unique[m]) for m in claims)
    assert kept == most_kept(partitions, claims)
    # A partition two members claim is nobody's claim; one that does not exist is ignored.
    assert sticky_shares(partitions, claims) == shares, "every leader decides the same"


def test_a_replica_joining_takes_its_share_from_the_others_and_nothing_else_moves():
    shares = sticky_shares(range(12), {"a": {0, 1, 2, 3, 4, 5}, "b": {6, 7, 8, 9, 10, 11},
                                       "c": set()})
    assert shares["a"] == [0, 1, 2, 3] and shares["b"] == [6, 7, 8, 9]
    assert shares["c"] == [4, 5, 10, 11]


def test_a_replica_leaving_hands_on_its_partitions_only():
    shares = sticky_shares(range(12), {"a": {0, 1, 2, 3}, "c": {8, 9, 10, 11}})
    assert set(shares["a"]) >= {0, 1, 2, 3} and set(shares["c"]) >= {8, 9, 10, 11}
    assert sorted(shares["a"] + shares["c"]) == list(range(12))


def test_a_partition_two_members_claim_is_dealt_out_like_a_free_one():
    # b was thought gone, its partitions went to a, and b came back still holding them.
    shares = sticky_shares(range(4), {"a": {0, 1, 2, 3}, "b": {2, 3}})
    assert shares == {"a": [0, 1], "b": [2, 3]}
    shares = sticky_shares(range(4), {"a": {0, 1, 2}, "b": {2, 3}})
    assert shares["a"][:2] == [0, 1] and 3 in shares["b"]


def test_more_members_than_partitions_leaves_some_with_nothing():
    shares = sticky_shares(range(2), {"a": {1}, "b": set(), "c": {0}})
    assert shares == {"a": [1], "b": [], "c": [0]}


@settings(max_examples=500, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.from_regex(rb'\{"owned":.{0,60}\}', fullmatch=True),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda v: __import__("json").dumps({"owned": v}).encode())))
def test_any_claim_bytes_read_as_a_claim_or_no_claim_never_an_error(user_data):
    claims = decode_claims(user_data)
    assert all(isinstance(t, str) and all(type(p) is int and p >= 0 for p in ps)
               for t, ps in claims.items())


def test_claims_out_of_bounds_are_no_claim():
    assert decode_claims(b"[" * 100_000) == {}
    assert decode_claims(b'{"owned": {"t": [1]}}' + b" " * 70_000) == {}
    assert decode_claims(b'{"owned": {"t": [true, 1.5, -1, "2", 3]}}') == {"t": {3}}
    assert decode_claims(encode_claims({"t": [3, 1, 1]})) == {"t": {1, 3}}


def wire(metadata: ConsumerProtocolMemberMetadata) -> ConsumerProtocolMemberMetadata:
    """A member's metadata as the leader reads it: encoded and decoded as on the wire."""
    decoded: ConsumerProtocolMemberMetadata = ConsumerProtocol.METADATA.decode(metadata.encode())
    return decoded


class Member:
    """One replica: what it holds, and the assignor it offers (which claims what it holds)."""

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.held: set[int] = set()
        self.assignor = StickyAssignor(lambda: {TOPIC: self.held})


def rebalance(members: list[Member], partitions: int, sticky: bool) -> int:
    """One generation: the leader assigns, each member takes its share. Returns the
    partitions moved (assigned to a member that did not hold them)."""
    if sticky:
        metadata = {m.member_id: wire(m.assignor.metadata([TOPIC])) for m in members}
        assignment = members[0].assignor.assign(Cluster(partitions), metadata)
    else:
        metadata = {m.member_id: wire(RoundRobinPartitionAssignor.metadata([TOPIC]))
                    for m in members}
        assignment = RoundRobinPartitionAssignor.assign(Cluster(partitions), metadata)
    moved = 0
    for member in members:
        got = {tp.partition for tp in ConsumerProtocol.ASSIGNMENT.decode(
            assignment[member.member_id].encode()).partitions()}
        moved += len(got - member.held)
        member.held = got
    assert sorted(p for m in members for p in m.held) == list(range(partitions))
    return moved


def scale_through(replica_counts: Iterable[int], partitions: int, sticky: bool,
                  seed: int) -> list[tuple[int, int]]:
    """Per scale step, the partitions moved and the fewest that balance allows (given what
    the members held). Members join with random ids, as Kafka's are; the newest leaves first."""
    rng = random.Random(seed)
    members: list[Member] = []
    steps = []
    for count in replica_counts:
        while len(members) < count:
            members.append(Member(f"orderflow-{uuid.UUID(int=rng.getrandbits(128))}"))
        del members[count:]
        fewest = partitions - most_kept(set(range(partitions)),
                                        {m.member_id: m.held for m in members})
        steps.append((rebalance(members, partitions, sticky), fewest))
    return steps


def test_scale_steps_move_the_fewest_partitions_round_robin_many_more():
    partitions, counts = 12, [1, 2, 3, 4, 6, 12, 6, 4, 3, 2, 1]
    for seed in range(5):
        sticky = scale_through(counts, partitions, sticky=True, seed=seed)[1:]
        round_robin = scale_through(counts, partitions, sticky=False, seed=seed)[1:]
        assert [moved for moved, _ in sticky] == [fewest for _, fewest in sticky], sticky
        assert sum(m for m, _ in sticky) < sum(m for m, _ in round_robin), (sticky, round_robin)
    # The figures docs/runbook.md quotes (the last seed): moves per step after the first.
    print(f"\n{NAME}: {[m for m, _ in sticky]} = {sum(m for m, _ in sticky)}; round-robin: "
          f"{[m for m, _ in round_robin]} = {sum(m for m, _ in round_robin)}")


def test_the_metadata_claims_only_subscribed_topics():
    assignor = StickyAssignor(lambda: {TOPIC: {2, 0}, "other": {1}})
    metadata = wire(assignor.metadata([TOPIC]))
    assert metadata.subscription == [TOPIC]
    assert decode_claims(metadata.user_data) == {TOPIC: {0, 2}}


def test_the_short_join_claims_fuzz_passes():
    """`make fuzz` runs 20,000 of these (fuzz/claims.py)."""
    from fuzz.claims import run_claims_fuzz

    report = run_claims_fuzz(1_000, seed=11)
    assert report.passed, report.render()
    assert set(report.by_kind) == {"valid", "mutated", "beyond", "other-topic", "bytes"}


def test_status_says_what_the_group_coordinator_sees_beside_the_replicas_reporting():
    from orderflow.operator.status import GroupView, describe_group

    assert describe_group("g", GroupView("Stable", NAME, 3), 3) == [
        f"group g: Stable, 3 members, assigning by {NAME}; 3 replicas reporting"]
    # An upgrade under way: old members hold the group by round-robin.
    lines = describe_group("g", GroupView("Stable", "roundrobin", 2), 1)
    assert "the group assigns by roundrobin, not orderflow-sticky" in lines[1]
    assert "Safe rollout" in lines[1]
    assert lines[2].startswith("  1 members of the group do not report themselves")
    # A coordinator that does not name the protocol (the embedded broker), or none at all.
    assert "a strategy the coordinator does not name" in describe_group(
        "g", GroupView("Stable", None, 1), 1)[0]
    assert describe_group("g", GroupView(error="KafkaConnectionError: down"), 0) == [
        "group g: not described (KafkaConnectionError: down); 0 replicas reporting"]
