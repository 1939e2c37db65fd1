"""`orderflow pause VENDOR` / `orderflow resume VENDOR`: every replica holds (lets go) the
calls to the vendor within seconds; orders keep being routed to it and wait. The record
stays on the compacted control topic, so replicas started later hold the vendor too."""

from __future__ import annotations

import time

from orderflow.config.settings import Settings
from orderflow.consumer.kafka import make_producer
from orderflow.contracts import control
from orderflow.contracts.events import Vendor
from orderflow.operator.report import Report
from orderflow.operator.topics import read_topic


async def current_pause(settings: Settings, vendor: Vendor) -> bool:
    key = control.pause_key(vendor)
    paused = False
    for read in await read_topic(settings.kafka, settings.topics.control, keep=lambda k: k == key):
        if read.value is None:
            paused = False
            continue
        record = control.parse(read.value)
        if isinstance(record, control.Pause):
            paused = record.paused
    return paused


async def set_pause(settings: Settings, vendor: Vendor, paused: bool, note: str | None,
                    report: Report) -> None:
    was = await current_pause(settings, vendor)
    record = control.Pause(at=time.time(), vendor=vendor, paused=paused, note=note)
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        meta = await producer.send_and_wait(settings.topics.control,
                                            record.model_dump_json().encode(), key=record.key())
    finally:
        await producer.stop()
    word = "paused" if paused else "resumed"
    already = was is paused
    report.data = {"vendor": str(vendor), "paused": paused, "was_paused": was,
                   "control_offset": meta.offset}
    if paused:
        report.say(f"{vendor}: {'already paused; ' if already else ''}paused on every replica "
                   f"within seconds (control record at offset {meta.offset}). Orders keep being "
                   f"routed to {vendor} and wait; `orderflow resume {vendor}` lets them go.")
    else:
        report.say(f"{vendor}: {'was not paused; ' if already else ''}{word} on every replica "
                   f"within seconds (control record at offset {meta.offset}); waiting calls "
                   f"start, earliest due first, within the vendor's limits.")
