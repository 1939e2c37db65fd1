"""The one write path for a job's state (docs/architecture.md, decision 4): its tracking
record first, acknowledged by the brokers, then the job table, then its vendor's lane.

The intake's new jobs, the runner's steps and intents, the pairs an operator re-opens and
the finished pairs housekeeping forgets all go through here: nothing else writes the
tracking topic, and no job is in the table (or queued) in a state its record does not hold,
but for a poll that learnt nothing new (`keep`: after a restart it simply polls again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from orderflow.consumer.dead_letters import TOO_LARGE
from orderflow.consumer.jobs import Job, JobKey, Phase
from orderflow.consumer.logging import get_logger
from orderflow.consumer.partitions import PartitionOwner
from orderflow.consumer.ports import JobStore

log = get_logger(__name__)


def _not_running(job: Job) -> None:
    return None


class JobJournal:
    """Records jobs: tracking record, then table, then schedule."""

    def __init__(self, store: JobStore, owner: PartitionOwner) -> None:
        self._store = store
        self._owner = owner
        self._schedule: Callable[[Job], None] = _not_running

    def schedule_with(self, schedule: Callable[[Job], None]) -> None:
        """Where recorded jobs go to run (the scheduler's lanes)."""
        self._schedule = schedule

    async def record(self, job: Job) -> None:
        """The job's new state, recorded, then in the table and, unless finished, queued to
        run when due (if its partition is still open here)."""
        await self._write(job)
        self.keep(job)

    async def record_running(self, job: Job) -> None:
        """The state of a job whose call is running (its intent to create): recorded and in
        the table; the run records what follows when the call ends."""
        await self._write(job)
        self._owner.table.put(job)

    def keep(self, job: Job) -> None:
        """The job's new state in the table and its lane, without a record: a poll that
        learnt nothing new (what must survive a crash is every announced change and the
        vendor's reference)."""
        self._owner.table.put(job)
        self._owner.index(job)
        if job.phase is not Phase.DONE and self._owner.is_open(job.partition):
            self._schedule(job)

    async def record_new(self, partition: int, jobs_by_offset: dict[int, list[Job]]) -> set[int]:
        """The jobs of a batch of input records, handed to the producer together (one round
        trip, not one per job), then kept. Returns the input offsets whose jobs the brokers
        refused for their size (less than the settings say they take): none of that
        record's jobs is kept, their records are removed again, and the caller
        dead-letters the input record. Raises KafkaError for a write that may succeed when
        the batch is tried again."""
        sent = [(offset, job, await self._store.send(job))
                for offset, jobs in jobs_by_offset.items() for job in jobs]
        refused: set[int] = set()
        for offset, job, future in sent:
            try:
                self._owner.note_tracking_offset(partition, (await future).offset)
            except TOO_LARGE as exc:
                log.error("tracking record refused for its size", order_id=job.order_id,
                          error=str(exc))
                refused.add(offset)
        for offset in refused:
            await self.forget(partition, [job.key for job in jobs_by_offset[offset]])
        for offset, jobs in jobs_by_offset.items():
            if offset not in refused:
                for job in jobs:
                    self.keep(job)
        return refused

    async def forget(self, partition: int, keys: Iterable[JobKey]) -> None:
        """Pairs removed for good: tombstones (compaction then drops their records), then
        out of the table."""
        keys = list(keys)
        last = await self._store.remove(partition, keys)
        if last is not None:
            self._owner.note_tracking_offset(partition, last)
        for key in keys:
            self._owner.table.forget(partition, key)

    async def _write(self, job: Job) -> None:
        offset = await self._store.write(job)
        self._owner.note_tracking_offset(job.partition, offset)
