"""Counts of finished attempts per type and 10-second step, published as ThroughputPoints."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Optional

from google.protobuf.timestamp_pb2 import Timestamp

from . import names
from .v1.queue_service_pb2 import ThroughputPoint

STEP_S = 10
# The counter each outcome adds to; the others (given back, overtaken, superseded) count nowhere.
_COUNTERS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "retrying": "retried",
    "cancelled": "cancelled",
    "expired": "cancelled",
}


class ThroughputCounter:
    """Publishes (core NATS) each type's counts when its step ends and on close()."""

    def __init__(self, publish: Callable[[str, bytes], None]) -> None:
        self.publish = publish
        self.steps: dict[str, ThroughputPoint] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._schedule()

    def count(self, worker_type: str, outcome: str) -> None:
        counter = _COUNTERS.get(outcome)
        if counter is None:
            return
        point = self.steps.get(worker_type)
        if point is None:
            start = Timestamp(seconds=int(time.time()) // STEP_S * STEP_S)
            point = self.steps[worker_type] = ThroughputPoint(start=start)
        setattr(point, counter, getattr(point, counter) + 1)

    def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._flush()

    def _schedule(self) -> None:
        until = STEP_S - time.time() % STEP_S
        self._timer = asyncio.get_running_loop().call_later(until, self._tick)

    def _tick(self) -> None:
        self._flush()
        self._schedule()

    def _flush(self) -> None:
        for worker_type, point in self.steps.items():
            self.publish(names.throughput_subject(worker_type), point.SerializeToString())
        self.steps.clear()
