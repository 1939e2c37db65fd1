"""What a benchmark run holds while its rounds run: the processes, the clients and the topics."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from orderflow.config.settings import Settings, TopicSettings
from orderflow.sandbox.outcomes import OutputReader
from orderflow.sandbox.processes import (
    Child,
    cpu_seconds,
)

# The status reader fetches with a short broker wait. With aiokafka's default
# (fetch_max_wait_ms=500) the embedded broker hands a record over ~135 ms (p50) after it is
# produced, which would be added to every latency measured here; at 50 ms it is ~25 ms.
READER_FETCH_MAX_WAIT_MS = 50


@dataclass
class Bench:
    args: argparse.Namespace
    bootstrap: str
    topics: TopicSettings
    group: str
    urls: dict[str, str]
    service: Child
    others: dict[str, int | None]  # name -> pid, for CPU shares
    http_port: int
    session: aiohttp.ClientSession
    producer: AIOKafkaProducer
    offsets: AIOKafkaConsumer
    watcher: AIOKafkaConsumer
    reader: OutputReader
    hop_topic: str
    routing: Settings = field(default_factory=Settings)

    def pids(self) -> dict[str, int | None]:
        return {"service": self.service.pid, **self.others}

    def cpu(self) -> dict[str, float | None]:
        return {name: cpu_seconds(pid) for name, pid in self.pids().items()}
