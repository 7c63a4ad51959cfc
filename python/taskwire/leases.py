"""A worker type's limits across all its workers, as leases in LIMITS_<type> (protocol step 5)."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Awaitable, Callable, Optional

from nats.aio.client import Client

from . import jetstream, names
from .jetstream import JetStreamError


class Lease:
    """A lease held: renewed over its sequence with each heartbeat, deleted when the attempt ends."""

    def __init__(self, nc: Client, stream: str, subject: str, seq: int, ttl: str, holder: str) -> None:
        self.nc = nc
        self.stream = stream
        self.subject = subject
        self.seq = seq
        self.ttl = ttl
        self.holder = holder

    async def renew(self) -> bool:
        """Renews it; False when it was lost (it lapsed, and another took it)."""
        seq = await take(self.nc, self.subject, self.seq, self.ttl, self.holder)
        if seq is None:
            return False
        self.seq = seq
        return True

    async def release(self) -> None:
        try:
            await jetstream.delete_message(self.nc, self.stream, self.seq)
        except Exception:  # noqa: BLE001 - a lease not deleted lapses after its TTL
            pass


async def take(nc: Client, subject: str, expected: int, ttl: str, holder: str) -> Optional[int]:
    """Publishes a lease over sequence `expected` (0: only if free); None when someone holds it."""
    headers = {"Nats-Expected-Last-Subject-Sequence": str(expected), "Nats-TTL": ttl}
    try:
        return (await jetstream.publish(nc, subject, holder.encode(), headers)).seq
    except JetStreamError as error:
        if error.wrong_last_sequence:
            return None
        raise


class Leases:
    """`count` leases of one limit of a type, on `taskwire.limit.<type>.<kind>.<n>`."""

    def __init__(self, nc: Client, worker_type: str, kind: str, count: int, ttl_s: int, renewed: bool) -> None:
        self.nc = nc
        self.worker_type = worker_type
        self.kind = kind
        self.count = count
        self.ttl = f"{max(1, ttl_s)}s"
        # Rate leases are never renewed nor deleted: they lapse after their window.
        self.renewed = renewed
        self._next = random.randrange(1_000_000)

    @classmethod
    def for_concurrency(cls, nc: Client, worker_type: str, count: int, ack_wait_ms: float) -> "Leases":
        return cls(nc, worker_type, "run", count, math.ceil(ack_wait_ms / 1000), True)

    @classmethod
    def for_rate(cls, nc: Client, worker_type: str, rate: float) -> "Leases":
        window = max(1, math.ceil(1 / rate))
        return cls(nc, worker_type, "rate", max(1, round(rate * window)), window, False)

    async def acquire(self, holder: str, waiting: Callable[[], Awaitable[None]]) -> Optional[Lease]:
        """Takes a free lease, trying each subject once per round; `waiting` runs between rounds
        (it keeps the task alive, may hold the next round back, or raise to give up). Returns the
        lease to renew and release, or None for a rate lease, which lapses by itself."""
        round_ = 0
        while True:
            for _ in range(self.count):
                n = self._next % self.count
                self._next += 1
                subject = names.limit_subject(self.worker_type, self.kind, n)
                seq = await take(self.nc, subject, 0, self.ttl, holder)
                if seq is not None:
                    if not self.renewed:
                        return None
                    return Lease(self.nc, names.limit_stream(self.worker_type), subject, seq, self.ttl, holder)
            await waiting()
            await asyncio.sleep(min(0.01 * 2**round_, 0.25))
            round_ += 1


def adopt_key_lease(nc: Client, worker_type: str, header: str, ack_wait_ms: float, holder: str) -> Optional[Lease]:
    """The fairness key's concurrency lease that came with a task (`Taskwire-Key-Lease: <subject> <seq>`)."""
    subject, _, seq = header.strip().partition(" ")
    if not subject or not seq.isdigit():
        return None
    ttl = f"{max(1, math.ceil(ack_wait_ms / 1000))}s"
    return Lease(nc, names.limit_stream(worker_type), subject, int(seq), ttl, holder)
