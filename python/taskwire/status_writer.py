"""One attempt's writes of its task's record (worker-runtime/status-writer.ts)."""

from __future__ import annotations

import asyncio
from typing import Callable, Literal, Optional, Union

from .rules import Delivery, overtaken
from .status import StatusBucket, WrittenStatus, is_terminal
from .v1 import task_pb2
from .v1.task_pb2 import TaskStatus

Lost = Literal["superseded", "overtaken"]
FinishOutcome = Union[WrittenStatus, Lost]


class StatusWriter:
    """RUNNING and progress are coalesced (one write per interval at most, never awaited by the
    handler); a terminal write is durable and conditional, and never overwrites a terminal record
    written by someone else ("superseded") nor one a later delivery wrote ("overtaken")."""

    def __init__(
        self,
        bucket: StatusBucket,
        status: TaskStatus,
        revision: int,
        interval_s: float,
        on_error: Callable[[BaseException], None],
        on_lost: Callable[[Lost], None],
    ) -> None:
        self.bucket = bucket
        #: The record as this attempt sees it: change it, then call touch().
        self.status = status
        self.revision = revision
        self.interval_s = interval_s
        self.on_error = on_error
        self.on_lost = on_lost
        self.lost: Optional[Lost] = None
        self.finished = False
        self.listed_running = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._chain: Optional[asyncio.Task[None]] = None

    def touch(self) -> None:
        """Schedules a best-effort write of the current record within the interval."""
        if self._timer or self.finished or self.lost:
            return
        self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._fire)

    def _fire(self) -> None:
        self._timer = None
        previous = self._chain

        async def write() -> None:
            if previous:
                await asyncio.gather(previous, return_exceptions=True)
            await self._write_best_effort()

        self._chain = asyncio.ensure_future(write())

    async def finish(self, update: Callable[[TaskStatus], None]) -> FinishOutcome:
        """Durably writes the record `update` makes of the current one."""
        self.finished = True
        if self._timer:
            self._timer.cancel()
            self._timer = None
        if self._chain:
            await asyncio.gather(self._chain, return_exceptions=True)
        if self.lost:
            return self.lost
        update(self.status)
        return await self._write_durably()

    async def begin(self) -> FinishOutcome:
        """Durably writes the current record now: the recorded start."""
        return await self._write_durably()

    async def _write_durably(self) -> FinishOutcome:
        while True:
            written = await self._write_once()
            if written:
                return written
            if self.lost:
                return self.lost

    async def _write_best_effort(self) -> None:
        try:
            # Two tries: a conflict with a non-terminal record only tells the revision to write over.
            for _ in range(2):
                if self.finished or self.lost:
                    return
                if await self._write_once():
                    return
                if self.lost:
                    self.on_lost(self.lost)
        except Exception as error:  # noqa: BLE001 - best effort, reported
            self.on_error(error)

    async def _write_once(self) -> Optional[WrittenStatus]:
        written = await self.bucket.write(self.status, self.revision)
        if written:
            self.revision = written.revision
            if self.status.state == task_pb2.TASK_STATE_RUNNING and not self.listed_running:
                self.listed_running = True
                self.bucket.index_state(self.status)
            return written
        current, revision = await self.bucket.read_entry(self.status.task_id)
        mine = Delivery(self.status.delivery_sequence, self.status.delivery_count)
        if current is not None and is_terminal(current.state):
            self.lost = "superseded"
        elif current is not None and overtaken(current, mine):
            self.lost = "overtaken"
        else:
            # A first write meeting a record that RetryDeadLetter wrote since: keep its errors.
            if current is not None and self.revision == 0:
                history = list(current.error_history) + list(self.status.error_history)
                del self.status.error_history[:]
                self.status.error_history.extend(history)
                self.status.returned_deliveries = current.returned_deliveries
            self.revision = revision
        return None
