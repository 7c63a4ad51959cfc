"""Pulling one consumer's tasks in explicit batches, and the handler slots they share
(worker-runtime/task-feed.ts, priority-slots.ts; protocol "Pulling")."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Awaitable, Callable, Optional

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeoutError


class PrioritySlots:
    """A counting semaphore whose waiters are served by rank (0 first), FIFO within a rank; one
    that has waited `aging_s` goes first whatever its rank. While held (paused), none is handed out."""

    def __init__(self, capacity: int, ranks: int, aging_s: float = 5.0) -> None:
        self.free = capacity
        self.held = False
        self.aging_s = aging_s
        self.waiters: list[deque[tuple[asyncio.Future[None], float]]] = [deque() for _ in range(ranks)]

    async def acquire(self, rank: int) -> None:
        if not self.held and self.free > 0 and all(not q for q in self.waiters):
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters[rank].append((future, time.monotonic()))
        await future

    def release(self) -> None:
        self.free += 1
        self._grant()

    def hold(self) -> None:
        self.held = True

    def unhold(self) -> None:
        self.held = False
        self._grant()

    def _grant(self) -> None:
        while not self.held and self.free > 0:
            queue = self._aged() or next((q for q in self.waiters if q), None)
            if queue is None:
                return
            future, _ = queue.popleft()
            if future.done():
                continue
            self.free -= 1
            future.set_result(None)

    def _aged(self) -> Optional[deque[tuple[asyncio.Future[None], float]]]:
        before = time.monotonic() - self.aging_s
        oldest: Optional[deque[tuple[asyncio.Future[None], float]]] = None
        for queue in self.waiters:
            if queue and queue[0][1] <= before and (oldest is None or queue[0][1] < oldest[0][1]):
                oldest = queue
        return oldest


class TaskFeed:
    """Pulls one consumer (`$JS.API.CONSUMER.MSG.NEXT`) and hands each message to a slot. Every
    pulled message is visible while it waits: kept alive with +WPI, given back at once on stop."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        consumer: str,
        slots: PrioritySlots,
        rank: int,
        prefetch: int,
        heartbeat_s: float,
        expires_s: float,
        run: Callable[[Msg], Awaitable[None]],
        give_back: Callable[[Msg], Awaitable[object]],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.nc = nc
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.slots = slots
        self.rank = rank
        self.prefetch = prefetch
        self.heartbeat_s = heartbeat_s
        self.expires_s = expires_s
        self.run = run
        self.give_back = give_back
        self.on_error = on_error
        # Pulled messages waiting for a slot, by id() (a Msg is not hashable).
        self.waiting: dict[int, Msg] = {}
        self.stopped = False
        self.extra: set[asyncio.Task[None]] = set()
        self.tasks: set[asyncio.Task[object]] = set()
        self._wake = asyncio.Event()
        self._loop = asyncio.ensure_future(self._pull_loop())
        self._beat = asyncio.ensure_future(self._heartbeat())

    async def stop(self) -> None:
        """Stops pulling and gives every waiting message back. Running tasks go on."""
        self.stopped = True
        self._beat.cancel()
        # The pull requests in flight end here (each unsubscribes its inbox), not when they expire.
        self._loop.cancel()
        for pull in self.extra:
            pull.cancel()
        for msg in list(self.waiting.values()):
            self._give_back(msg)
        self.waiting.clear()
        await asyncio.gather(self._loop, *self.extra, return_exceptions=True)
        await asyncio.gather(*[t for t in self.tasks if t.get_name().startswith("give-back")], return_exceptions=True)

    def repull(self) -> None:
        """One more pull request beside the one in flight: one made while paused may stay unserved."""
        if self.stopped or self.extra:
            return
        room = max(1, self.prefetch - len(self.waiting))
        task = asyncio.ensure_future(self._pull_quietly(room))
        self.extra.add(task)
        task.add_done_callback(self.extra.discard)

    async def _pull_quietly(self, room: int) -> None:
        try:
            await self._pull(room)
        except Exception as error:  # noqa: BLE001 - reported; the loop pulls on
            if not self.stopped:
                self.on_error(error)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for msg in list(self.waiting.values()):
                self._track(msg.in_progress(), "heartbeat")

    async def _pull_loop(self) -> None:
        threshold = -(-self.prefetch // 2)
        failures = 0
        while not self.stopped:
            room = self.prefetch - len(self.waiting)
            if room < threshold:
                await self._sleep(None)
                continue
            try:
                await self._pull(room)
                failures = 0
            except Exception as error:  # noqa: BLE001 - reported, retried with backoff
                if self.stopped:
                    return
                self.on_error(error)
                await self._sleep(min(0.1 * 2**failures, 5.0))
                failures += 1

    async def _pull(self, room: int) -> None:
        """One pull request for up to `room` messages, each admitted as it comes, until it ends."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        try:
            request = {"batch": room, "expires": int(self.expires_s * 1e9)}
            await self.nc.publish(self.next_subject, json.dumps(request).encode(), reply=inbox)
            received = 0
            until = time.monotonic() + self.expires_s + 1.0
            while received < room and not self.stopped:
                try:
                    msg = await sub.next_msg(timeout=max(0.01, until - time.monotonic()))
                except NatsTimeoutError:
                    return
                status = (msg.headers or {}).get("Status")
                if status == "100":
                    continue  # an idle heartbeat
                if status:
                    return  # 404 no messages, 408 request expired, 409: the request ended
                received += 1
                self._admit(msg)
        finally:
            await _unsubscribe(sub)

    def _admit(self, msg: Msg) -> None:
        if self.stopped:
            self._give_back(msg)
            return
        self.waiting[id(msg)] = msg
        self._track(self._start_when_free(msg), "start")

    async def _start_when_free(self, msg: Msg) -> None:
        await self.slots.acquire(self.rank)
        if self.waiting.pop(id(msg), None) is None:  # given back by stop() while it waited
            self.slots.release()
            return
        self._wake.set()
        try:
            await self.run(msg)
        finally:
            self.slots.release()

    def _give_back(self, msg: Msg) -> None:
        self._track(self.give_back(msg), "give-back")

    def _track(self, awaitable: Awaitable[object], name: str) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(awaitable)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and task.get_name() != "heartbeat":
            self.on_error(task.exception())  # type: ignore[arg-type]

    async def _sleep(self, seconds: Optional[float]) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception:  # noqa: BLE001 - unsubscribed already, or the connection is closing
        pass
