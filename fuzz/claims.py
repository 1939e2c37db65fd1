"""Hostile join metadata through the group leader's assignment (consumer/assignment.py).

Whatever may join the consumer group writes the user data the leader reads: a claim of the
partitions a member holds. Each round builds a group of 1 to 8 members whose metadata is a
valid claim, a mutated one (bit flips, cuts, splices: fuzz/records.py's mutations), a claim of
partitions that do not exist or that another member claims too, or arbitrary bytes, puts it
through the wire encoding as a broker would hand it on, and has the leader assign.

Checked each round: no exception; every partition of the topic to exactly one member; shares
that differ by one at most; a member's valid, uncontested claim kept up to its share (at
least min(claim, the smaller share) of it)."""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

from aiokafka.coordinator.protocol import ConsumerProtocol, ConsumerProtocolMemberMetadata

from fuzz.intake import problem_lines
from fuzz.records import mutate
from orderflow.consumer.assignment import StickyAssignor, decode_claims, encode_claims

TOPIC = "orders.created"


class _Cluster:
    """What the leader reads of the cluster: the topic's partitions."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.partitions)) if topic == TOPIC else None


@dataclass
class ClaimsFuzzReport:
    rounds: int = 0
    members: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    crashes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.crashes or self.violations)

    def render(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.by_kind.items()))
        lines = [f"join claims fuzz: {self.rounds} assignments of {self.members} members "
                 f"({kinds}); {len(self.crashes)} crashes, {len(self.violations)} violations, "
                 f"{self.seconds:.1f} s"]
        lines.extend(problem_lines(self.crashes, [], self.violations))
        return "\n".join(lines)


def _claim(rng: random.Random, partitions: int) -> tuple[str, bytes, set[int]]:
    """A member's user data: its kind, the bytes, and the claim it validly makes (if any)."""
    valid = set(rng.sample(range(partitions), rng.randint(0, partitions)))
    raw = encode_claims({TOPIC: valid})
    kind = rng.choice(["valid", "mutated", "beyond", "other-topic", "bytes"])
    if kind == "valid":
        return kind, raw, valid
    if kind == "mutated":
        return kind, mutate(rng, raw), set()
    if kind == "beyond":
        wild = valid | {rng.choice([partitions, partitions + 7, 2**31 - 1, 2**63, -1])}
        return kind, encode_claims({TOPIC: wild}), set()
    if kind == "other-topic":
        return kind, encode_claims({"elsewhere": valid}), set()
    return kind, rng.randbytes(rng.randint(0, 200)), set()


def run_claims_fuzz(count: int, seed: int = 1) -> ClaimsFuzzReport:
    rng = random.Random(seed)
    report = ClaimsFuzzReport()
    began = time.monotonic()
    for n in range(count):
        partitions = rng.randint(1, 48)
        members: dict[str, ConsumerProtocolMemberMetadata] = {}
        valid: dict[str, set[int]] = {}
        for m in range(rng.randint(1, 8)):
            kind, user_data, claimed = _claim(rng, partitions)
            member = f"orderflow-{n}-{m}"
            # As the leader gets it: encoded by the member, decoded from the JoinGroup answer.
            members[member] = ConsumerProtocol.METADATA.decode(
                ConsumerProtocolMemberMetadata(0, [TOPIC], user_data).encode())
            valid[member] = claimed
            report.by_kind[kind] += 1
        report.rounds += 1
        report.members += len(members)
        try:
            assignment = StickyAssignor(dict).assign(_Cluster(partitions), members)
        except Exception:  # any exception is the finding
            report.crashes.append(f"round {n}: {traceback.format_exc(limit=3)}")
            continue
        shares = {member: [p for topic, ps in a.assignment if topic == TOPIC for p in ps]
                  for member, a in assignment.items()}
        dealt = sorted(p for share in shares.values() for p in share)
        sizes = [len(share) for share in shares.values()]
        if set(shares) != set(members) or dealt != list(range(partitions)):
            report.violations.append(f"round {n}: partitions dealt {dealt} of {partitions}")
        elif max(sizes) - min(sizes) > 1:
            report.violations.append(f"round {n}: unbalanced shares {sizes}")
        else:
            # Contested by any member whose bytes still read as a claim, mutated or not.
            contested = Counter(p for metadata in members.values()
                                for p in decode_claims(metadata.user_data).get(TOPIC, ()))
            smaller = partitions // len(members)
            for member, claim in valid.items():
                sole = {p for p in claim if contested[p] == 1}
                if len(sole & set(shares[member])) < min(len(sole), smaller):
                    report.violations.append(
                        f"round {n}: {member} kept {sorted(sole & set(shares[member]))} of "
                        f"its claim {sorted(sole)}")
    report.seconds = time.monotonic() - began
    return report
