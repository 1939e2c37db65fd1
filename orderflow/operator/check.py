"""`orderflow check`: settings, brokers, topics and each enabled vendor's credentials, one
line per check. Exit 0 when every check passes, 1 when one fails (2, before any check, for
settings that do not load)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from orderflow.adapters.enabled import build_adapters
from orderflow.adapters.errors import VendorError
from orderflow.config.settings import Settings, env_name
from orderflow.consumer.kafka import client_options
from orderflow.consumer.metrics import Metrics
from orderflow.contracts.events import Vendor
from orderflow.operator.pause import active_pauses, describe_pause
from orderflow.operator.report import NOT_DONE, Report, Subcommands, describe_error
from orderflow.operator.topics import CONNECT_TIMEOUT_S

VENDOR_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings) -> list[Check]:
    checks = [Check("settings", True, "every ORDERFLOW_* variable is a setting with a valid value")]
    admin = AIOKafkaAdminClient(**client_options(settings.kafka),
                                request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000))
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        existing = set(await asyncio.wait_for(admin.list_topics(), CONNECT_TIMEOUT_S))
    except Exception as exc:
        checks.append(Check("brokers", False,
                            f"no broker answers at {settings.kafka.bootstrap_servers} "
                            f"({env_name('kafka', 'bootstrap_servers')}): "
                            f"{describe_error(exc)}"))
        await _close(admin)
        checks.append(Check("topics", False, "not checked: no broker"))
    else:
        checks.append(Check("brokers", True, f"reachable at {settings.kafka.bootstrap_servers}"))
        try:
            checks.extend(await _topic_checks(settings, admin, existing))
        finally:
            await _close(admin)
    checks.extend(await _vendor_checks(settings))
    return checks


async def _close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception:  # a client that never connected may fail to close
        pass


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> int:
    described = await admin.describe_topics([topic])
    return len(described[0]["partitions"])


async def _compacted(admin: AIOKafkaAdminClient, topic: str) -> bool | None:
    """Whether the topic's cleanup.policy includes compact; None when the broker won't say."""
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})])
        for answer in answers:
            for resource in answer.resources:
                for entry in resource[4]:
                    if entry[0] == "cleanup.policy":
                        return "compact" in str(entry[1])
    except Exception:  # an embedded or restricted broker
        return None
    return None


async def _topic_checks(settings: Settings, admin: AIOKafkaAdminClient,
                        existing: set[str]) -> list[Check]:
    topics = settings.topics
    checks = []
    setting = {name: env_name("topics", name) for name in type(topics).model_fields}
    input_partitions: int | None = None
    for name in ("orders_created", "status", "print_files_ready", "dead_letter"):
        topic = getattr(topics, name)
        if topic not in existing:
            checks.append(Check(f"topic {name}", False,
                                f"{topic!r} does not exist ({setting[name]}); the platform "
                                f"creates it"))
            continue
        count = await _partitions(admin, topic)
        if name == "orders_created":
            input_partitions = count
        checks.append(Check(f"topic {name}", True, f"{topic!r}, {_partitions_text(count)}"))
    if topics.tracking not in existing:
        checks.append(Check("topic tracking", True,
                            f"{topics.tracking!r} absent: `orderflow run` creates it, compacted, "
                            f"with as many partitions as {topics.orders_created!r}"))
    else:
        count = await _partitions(admin, topics.tracking)
        compacted = await _compacted(admin, topics.tracking)
        if input_partitions is not None and count != input_partitions:
            checks.append(Check("topic tracking", False,
                                f"{topics.tracking!r} has {count} partitions but "
                                f"{topics.orders_created!r} has {input_partitions}: they must match "
                                f"(orderflow run refuses to start)"))
        elif compacted is False:
            checks.append(Check("topic tracking", False,
                                f"{topics.tracking!r} is not compacted (cleanup.policy must "
                                f"include compact, or finished pairs are lost to retention)"))
        else:
            checks.append(Check("topic tracking", True,
                                f"{topics.tracking!r}, {_partitions_text(count)}, " + (
                                    "compacted" if compacted else "compaction not reported "
                                    "by the broker")))
    if topics.control not in existing:
        checks.append(Check("topic control", True,
                            f"{topics.control!r} absent: `orderflow run` creates it"))
    else:
        compacted = await _compacted(admin, topics.control)
        checks.append(Check("topic control", compacted is not False,
                            f"{topics.control!r}, " + (
                                "not compacted: pauses and retries would be lost to retention"
                                if compacted is False else "compacted" if compacted else
                                "compaction not reported by the broker")))
    return checks


def _partitions_text(count: int) -> str:
    return f"{count} partition" + ("" if count == 1 else "s")


async def _vendor_checks(settings: Settings) -> list[Check]:
    checks = []
    adapters = build_adapters(settings, Metrics(process_collectors=False))
    for vendor, adapter in sorted(adapters.items()):
        name = f"vendor {vendor}"
        try:
            await adapter.start()
            detail = await asyncio.wait_for(adapter.verify_credentials(), VENDOR_TIMEOUT_S)
            checks.append(Check(name, True, f"{settings.vendor_settings()[str(vendor)].base_url}: "
                                            f"{detail}"))
        except VendorError as exc:
            checks.append(Check(name, False, f"{exc} ({_hint(str(vendor), exc)})"))
        except TimeoutError:
            checks.append(Check(name, False, f"no answer within {VENDOR_TIMEOUT_S:g}s "
                                             f"({env_name(str(vendor), 'base_url')})"))
        finally:
            await adapter.stop()
    for name, vendor_settings in sorted(settings.vendor_settings().items()):
        if not vendor_settings.enabled:
            checks.append(Check(f"vendor {name}", True,
                                f"disabled ({env_name(name, 'enabled')}=false)"))
    return checks


def _hint(vendor: str, exc: VendorError) -> str:
    if exc.status in (401, 403):
        names = {"zakeke": ("client_id", "client_secret"), "smake": ("api_key",),
                 "reevoo": ("api_key", "api_secret")}[vendor]
        return "check " + ", ".join(env_name(vendor, n) for n in names)
    if exc.status == 400 and vendor == "reevoo":
        return f"check {env_name('reevoo', 'trkref')}"
    return f"check {env_name(vendor, 'base_url')}"


def add_parser(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    sub = commands.add_parser("check", parents=[common],
                              help="settings, brokers, topics and vendor credentials, one line each")
    sub.set_defaults(run=lambda settings, args, report: check(settings, report))


async def check(settings: Settings, report: Report) -> None:
    checks = await run_checks(settings)
    report.data = {"checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]}
    try:
        paused = await active_pauses(settings)
    except (KafkaError, OSError, TimeoutError):
        paused = {}  # the brokers' own check above says why
    report.data["paused"] = {str(v): p.model_dump(mode="json") for v, p in paused.items()}
    for c in checks:
        report.say(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<24} {c.detail}")
        vendor = c.name.removeprefix("vendor ")
        if c.name.startswith("vendor ") and Vendor(vendor) in paused:
            report.say(f"      {describe_pause(paused[Vendor(vendor)])}")
    failed = [c for c in checks if not c.ok]
    report.say(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    if failed:
        report.exit_code = NOT_DONE
