"""`orderflow status`: the fleet at a glance, from Kafka alone: each replica's word about
itself on the control topic (`replica/<id>`, written every 30 s: the partitions it owns,
which are restored, its vendors' pairs waiting, overdue and running), the group as its
coordinator describes it (state, assignment strategy, members: a member that does not
report itself is not a replica of this release), the group's committed offsets against the
input topic's ends (the lag per partition), and the pauses in force.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from orderflow.config.settings import Settings
from orderflow.consumer.assignment import NAME as ASSIGNMENT_STRATEGY
from orderflow.consumer.fleet import STALE_AFTER_S
from orderflow.consumer.kafka import client_options
from orderflow.contracts import control
from orderflow.operator.pause import active_pauses, control_records, describe_pause
from orderflow.operator.report import NOT_DONE, Report, Subcommands
from orderflow.operator.topics import CONNECT_TIMEOUT_S


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser(
        "status", parents=[common],
        help="the fleet: replicas and their partitions, lag, vendors' pairs, pauses")
    sub.set_defaults(run=lambda settings, args, report: status(settings, report))


async def replicas(settings: Settings, now: float) -> list[control.ReplicaStatus]:
    """The replicas' latest words about themselves, those no older than STALE_AFTER_S."""
    found = [record for record in await control_records(settings, b"replica/")
             if isinstance(record, control.ReplicaStatus) and now - record.at <= STALE_AFTER_S]
    return sorted(found, key=lambda r: r.replica)


async def input_lag(settings: Settings) -> dict[int, dict[str, int | None]]:
    """Per input partition: its end, the group's committed offset, and the difference."""
    consumer = AIOKafkaConsumer(**client_options(settings.kafka),
                                group_id=settings.kafka.group_id, enable_auto_commit=False)
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        topic = settings.topics.orders_created
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps) if tps else {}
        lag: dict[int, dict[str, int | None]] = {}
        for tp in tps:
            committed = await consumer.committed(tp)
            lag[tp.partition] = {"end": ends[tp], "committed": committed,
                                 "lag": max(0, ends[tp] - (committed or 0))}
        return lag
    finally:
        await consumer.stop()


@dataclass
class GroupView:
    """The group as its coordinator describes it (or why it could not)."""

    state: str | None = None
    strategy: str | None = None  # the protocol its members agreed on
    members: int | None = None
    error: str | None = None


async def group_view(settings: Settings) -> GroupView:
    """The group as its coordinator describes it: state, strategy (the protocol), members."""
    admin = AIOKafkaAdminClient(**client_options(settings.kafka),
                                request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        [response] = await asyncio.wait_for(
            admin.describe_consumer_groups([settings.kafka.group_id]), CONNECT_TIMEOUT_S)
        [group] = response.groups
        error_code, _, state, _, protocol, members = group[:6]
        if error_code:
            return GroupView(error=f"DescribeGroups answered error {error_code}")
        return GroupView(state, protocol or None, len(members))
    except (KafkaError, OSError, TimeoutError, ValueError) as exc:
        return GroupView(error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def describe_group(group_id: str, group: GroupView, reporting: int) -> list[str]:
    """The group's lines of `status`: what the coordinator says of it beside the replicas
    that report themselves, and what a difference means."""
    if group.error is not None:
        described = f"not described ({group.error})"
    else:
        described = (f"{group.state}, {group.members} members, assigning by "
                     f"{group.strategy or 'a strategy the coordinator does not name'}")
    lines = [f"group {group_id}: {described}; {reporting} replicas reporting"]
    if group.strategy not in (None, ASSIGNMENT_STRATEGY):
        lines.append(f"  the group assigns by {group.strategy}, not {ASSIGNMENT_STRATEGY}: "
                     "members of an earlier release are in it, and this release's replicas "
                     "stay out until they are gone (docs/runbook.md, Safe rollout)")
    if group.members is not None and group.members > reporting:
        lines.append(f"  {group.members - reporting} members of the group do not report "
                     "themselves: replicas starting, of another release, or other clients "
                     "using this group id")
    return lines


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def status(settings: Settings, report: Report) -> None:
    now = time.time()
    fleet = await replicas(settings, now)
    lag = await input_lag(settings)
    paused = await active_pauses(settings)
    group = await group_view(settings)
    owner_of = {p: r for r in fleet for p in r.partitions}
    vendors: dict[str, dict[str, int]] = {}
    for replica in fleet:
        for vendor, work in replica.vendors.items():
            total = vendors.setdefault(str(vendor), {"waiting": 0, "overdue": 0, "running": 0})
            for name, count in work.model_dump().items():
                total[name] += count
    report.data = {
        "group": settings.kafka.group_id,
        "group_state": asdict(group),
        "replicas": [r.model_dump(mode="json") | {"seen_s_ago": round(now - r.at, 1)}
                     for r in fleet],
        "partitions": {str(p): {**numbers, "owner": owner_of[p].replica if p in owner_of else None,
                                "restored": p in owner_of and p in owner_of[p].restored}
                       for p, numbers in lag.items()},
        "vendors": vendors,
        "paused": {str(v): p.model_dump(mode="json") for v, p in paused.items()},
    }
    for line in describe_group(settings.kafka.group_id, group, len(fleet)):
        report.say(line)
    for replica in fleet:
        report.say(f"  {replica.replica} ({replica.host}, {replica.version or '?'}, "
                   f"seen {now - replica.at:.0f}s ago): partitions {replica.partitions or '-'}"
                   + (f", restoring {sorted(set(replica.partitions) - set(replica.restored))}"
                      if set(replica.partitions) - set(replica.restored) else ""))
    report.say(f"input {settings.topics.orders_created}:")
    for partition, numbers in lag.items():
        owner = owner_of.get(partition)
        state = ("no replica reports it" if owner is None else
                 f"{owner.replica}, " + ("restored" if partition in owner.restored
                                         else "restoring"))
        report.say(f"  partition {partition}: lag {numbers['lag']} (end {numbers['end']}, "
                   f"committed {numbers['committed']}); {state}")
    report.say("vendors:")
    for name, counts in sorted(vendors.items()):
        report.say(f"  {name}: {counts['waiting']} waiting, {counts['overdue']} overdue, "
                   f"{counts['running']} running")
    for pause in paused.values():
        report.say(f"  {describe_pause(pause)}")
    unowned = [p for p in lag if p not in owner_of]
    if not fleet or unowned:
        report.exit_code = NOT_DONE
        report.say("no replica reports itself" if not fleet else
                   f"partitions no replica reports: {unowned}")



