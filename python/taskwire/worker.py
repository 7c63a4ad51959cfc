"""A worker: serves task services' bindings from NATS JetStream (docs/protocol.md, "Running a task").

It runs tasks only: the streams and consumers of its types are made by others (a gateway,
a TypeScript worker, `taskwire migrate`); it waits for them at start. It creates only its
own broadcast consumers and, if missing, the `taskwire_workers` bucket.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import socket
import sys
import time
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Callable, Iterable, Literal, Optional, Union

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from . import jetstream, names
from .attempt import AttemptEnvironment, Running, give_back, run_attempt
from .background import settle, spawn
from .binding import ServiceBinding
from .connection import Settings, connect
from .feed import PrioritySlots, TaskFeed
from .jetstream import JetStreamError
from .leases import Leases
from .outcomes import task_result_of
from .status import StatusBucket
from .throughput import ThroughputCounter
from .timestamps import now_timestamp
from .v1 import worker_service_pb2
from .v1.task_pb2 import TaskStatus

PRESENCE_TTL_S = 15
PRESENCE_REFRESH_S = 5
DEFAULT_MAX_RESULT_BYTES = 1_000_000
WORKER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CANCELLED_KEPT = 10_000

WorkerState = Literal["starting", "running", "draining", "closed"]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Worker:
    """A running worker. `close()` drains it: stops pulling, gives back what never started, lets
    running handlers finish within the grace period, gives back what it then interrupts."""

    def __init__(
        self,
        nc: Client,
        owns_connection: bool,
        services: list[ServiceBinding],
        worker_id: str,
        concurrency: Optional[int],
        prefetch: Optional[int],
        shutdown_grace_ms: float,
        result_subject: Optional[Callable[[str], str]],
        on_error: Callable[[str, BaseException], None],
        max_result_bytes: Optional[int] = None,
    ) -> None:
        self.nc = nc
        self.owns_connection = owns_connection
        self.services = services
        self.id = worker_id
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.shutdown_grace_ms = shutdown_grace_ms
        self.result_subject = result_subject or names.result_subject
        self.on_error = on_error
        self.max_result_bytes = max_result_bytes or DEFAULT_MAX_RESULT_BYTES
        self.state: WorkerState = "starting"
        self.worker_types = [s.worker_type for s in services]
        self.bucket = StatusBucket(nc)
        self.running: dict[str, Running] = {}
        self.cancelled: OrderedDict[str, None] = OrderedDict()
        self.feeds: list[TaskFeed] = []
        self.feeds_of: dict[str, list[TaskFeed]] = {}
        self.slots_of: dict[str, PrioritySlots] = {}
        self.pause_ends: dict[str, asyncio.TimerHandle] = {}
        self.subscriptions: list[object] = []
        self.attempts: set[asyncio.Task[None]] = set()
        self.presence_keys: list[str] = []
        self.presence_task: Optional[asyncio.Task[None]] = None
        self.throughput: Optional[ThroughputCounter] = None
        self.started_at = now_timestamp()
        self._closing: Optional[asyncio.Task[None]] = None
        self._closed = asyncio.Event()

    # --- start ---------------------------------------------------------------------------

    async def _start(self) -> None:
        self.throughput = ThroughputCounter(lambda subject, data: spawn(self.nc.publish(subject, data)))
        ack_waits = {s.worker_type: await self._wait_for_topology(s) for s in self.services}
        await self._status_ttls()
        await self._ensure_workers_bucket()
        for service in self.services:
            await self._serve(service, ack_waits[service.worker_type])
        self.presence_task = asyncio.ensure_future(self._refresh_presence())
        self.state = "running"

    async def _wait_for_topology(self, service: ServiceBinding) -> float:
        """Waits until the type's streams and consumers exist; returns the normal consumer's ack_wait in ms."""
        t = service.worker_type
        needed: list[tuple[str, Optional[str]]] = [
            (names.STATUS_STREAM, None),
            (names.stream_name(t), None),
            *[(names.stream_name(t), names.consumer_name(t, p)) for p in names.PRIORITIES],
            (names.broadcast_stream(t), None),
            (f"DEAD_{t}", None),
        ]
        if service.max_concurrency or service.max_rate:
            needed.append((names.limit_stream(t), None))
        logged_at: Optional[float] = None
        while True:
            missing = None
            ack_wait_ns = 30_000_000_000
            try:
                for stream, consumer in needed:
                    if consumer is None:
                        await jetstream.stream_info(self.nc, stream)
                        continue
                    info = await jetstream.consumer_info(self.nc, stream, consumer)
                    if consumer == names.consumer_name(t, "normal"):
                        ack_wait_ns = int(info["config"].get("ack_wait", ack_wait_ns))
            except JetStreamError as error:
                if not error.not_found:
                    raise
                missing = f"{stream}{f' consumer {consumer}' if consumer else ''}"
            except (NoRespondersError, NatsTimeoutError):
                missing = "JetStream (no answer)"
            if missing is None:
                return ack_wait_ns / 1e6
            now = time.monotonic()
            if logged_at is None or now - logged_at >= 60:
                logged_at = now
                _log(
                    f"worker {self.id}: waiting for {missing} of worker type {t}: a gateway, a TypeScript "
                    "worker or `taskwire migrate` creates it"
                )
            await asyncio.sleep(1)

    async def _status_ttls(self) -> None:
        """The Nats-TTL of types keeping their records for less than the bucket, where the bucket allows it."""
        asking = [s for s in self.services if s.status_ttl_ms]
        if not asking:
            return
        config = (await jetstream.stream_info(self.nc, names.STATUS_STREAM))["config"]
        bucket_ms = int(config.get("max_age", 0)) / 1e6
        if not config.get("allow_msg_ttl"):
            return  # made by a process that knows these types: it turns allow_msg_ttl on
        for s in asking:
            assert s.status_ttl_ms is not None
            if bucket_ms == 0 or s.status_ttl_ms < bucket_ms:
                self.bucket.ttls[s.worker_type] = f"{max(1, -(-s.status_ttl_ms // 1000))}s"

    async def _ensure_workers_bucket(self) -> None:
        stream = f"KV_{names.WORKERS_BUCKET}"
        try:
            await jetstream.stream_info(self.nc, stream)
            return
        except JetStreamError as error:
            if not error.not_found:
                raise
        status = (await jetstream.stream_info(self.nc, names.STATUS_STREAM))["config"]
        try:
            await jetstream.create_stream(
                self.nc,
                {
                    "name": stream,
                    "subjects": [f"$KV.{names.WORKERS_BUCKET}.>"],
                    "retention": "limits",
                    "max_msgs_per_subject": 1,
                    "max_age": PRESENCE_TTL_S * 1_000_000_000,
                    "duplicate_window": PRESENCE_TTL_S * 1_000_000_000,
                    "discard": "new",
                    "storage": status.get("storage", "file"),
                    "num_replicas": status.get("num_replicas", 1),
                    "allow_rollup_hdrs": True,
                    "deny_delete": True,
                    "allow_direct": True,
                    "max_msgs": -1,
                    "max_bytes": -1,
                    "max_msg_size": -1,
                    "max_consumers": -1,
                },
            )
        except JetStreamError:
            # Made meanwhile by another process: then it is there now.
            await jetstream.stream_info(self.nc, stream)

    async def _serve(self, service: ServiceBinding, ack_wait_ms: float) -> None:
        t = service.worker_type
        concurrency = self.concurrency or service.concurrency or 16
        prefetch = self.prefetch or concurrency
        slots = PrioritySlots(concurrency, len(names.PRIORITIES))
        self.slots_of[t] = slots
        heartbeat_s = max(0.1, ack_wait_ms / 3 / 1000)
        env = AttemptEnvironment(
            nc=self.nc,
            bucket=self.bucket,
            binding=service,
            worker_id=self.id,
            ack_wait_ms=ack_wait_ms,
            heartbeat_s=heartbeat_s,
            max_result_bytes=service.max_result_bytes or self.max_result_bytes,
            running=self.running,
            cancelled=self.cancelled,
            draining=lambda: self.state in ("draining", "closed"),
            paused=lambda: slots.held,
            report_result=self._report_result,
            count=self._count,
            on_error=self._error,
            concurrency=(
                Leases.for_concurrency(self.nc, t, service.max_concurrency, ack_wait_ms)
                if service.max_concurrency
                else None
            ),
            rate=Leases.for_rate(self.nc, t, service.max_rate) if service.max_rate else None,
        )
        self.subscriptions.append(await self.nc.subscribe(names.cancel_subject(t), cb=self._on_cancel))

        async def on_control(msg: Msg) -> None:
            self._on_control(t, msg)

        self.subscriptions.append(await self.nc.subscribe(names.control_subject(t), cb=on_control))
        await jetstream.create_consumer(
            self.nc,
            names.broadcast_stream(t),
            {
                "durable_name": names.endpoint_consumer_name(t, self.id),
                "filter_subject": names.broadcast_filter(t, self.id),
                "ack_policy": "explicit",
                "ack_wait": int(ack_wait_ms * 1e6),
                "max_deliver": -1,
                "deliver_policy": "all",
            },
        )
        sources = [(rank, names.stream_name(t), names.consumer_name(t, p)) for rank, p in enumerate(names.PRIORITIES)]
        # Broadcast copies are served with "high".
        sources.append((0, names.broadcast_stream(t), names.endpoint_consumer_name(t, self.id)))
        feeds = []
        for rank, stream, consumer in sources:
            feeds.append(
                TaskFeed(
                    self.nc,
                    stream,
                    consumer,
                    slots,
                    rank,
                    prefetch,
                    heartbeat_s,
                    # Half an ack wait, from 1 to 10 s: a frozen worker's pull is gone when its tasks come back.
                    min(10.0, max(1.0, ack_wait_ms / 2000)),
                    run=lambda msg, env=env: self._run(env, msg),
                    give_back=lambda msg: give_back(self.bucket, msg),
                    on_error=lambda error, t=t: self._error(f"fetching {t} tasks", error),
                )
            )
        self.feeds_of[t] = feeds
        self.feeds.extend(feeds)
        key = f"{t}.{self.id}"
        self.presence_keys.append(key)
        await self._put_presence(key)

    # --- presence ------------------------------------------------------------------------

    def _instance(self) -> bytes:
        running: dict[str, int] = {}
        for task_id in self.running:
            t = names.worker_type_of(task_id)
            running[t] = running.get(t, 0) + 1
        instance = worker_service_pb2.WorkerInstance(
            worker_id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            runtime=f"python {platform.python_version()}",
        )
        for service in self.services:
            if f"{service.worker_type}.{self.id}" in self.presence_keys:
                instance.types.add(
                    worker_type=service.worker_type,
                    running=running.get(service.worker_type, 0),
                    concurrency=self.concurrency or service.concurrency or 16,
                )
        return instance.SerializeToString()

    async def _put_presence(self, key: str) -> None:
        await jetstream.publish(self.nc, f"$KV.{names.WORKERS_BUCKET}.{key}", self._instance())

    async def _refresh_presence(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_S)
            for key in self.presence_keys:
                try:
                    await self._put_presence(key)
                except Exception as error:  # noqa: BLE001 - the next refresh tries again
                    self._error("refreshing its presence", error)

    # --- attempts, cancels, control ------------------------------------------------------

    async def _run(self, env: AttemptEnvironment, msg: Msg) -> None:
        task = asyncio.ensure_future(run_attempt(env, msg))
        self.attempts.add(task)
        try:
            await task
        except Exception as error:  # noqa: BLE001 - no outcome recorded: the message is redelivered
            self._error(f"running a task on {msg.subject}", error)
        finally:
            self.attempts.discard(task)

    def _report_result(self, status: TaskStatus, _: bytes) -> None:
        data = task_result_of(status).SerializeToString()
        spawn(self._publish_quietly(self.result_subject(status.worker_type), data))

    async def _publish_quietly(self, subject: str, data: bytes) -> None:
        try:
            await self.nc.publish(subject, data)
        except Exception as error:  # noqa: BLE001 - best effort
            self._error(f"publishing on {subject}", error)

    def _count(self, worker_type: str, outcome: str) -> None:
        if self.throughput:
            self.throughput.count(worker_type, outcome)

    async def _on_cancel(self, msg: Msg) -> None:
        task_id = msg.data.decode(errors="replace")
        self.cancelled[task_id] = None
        self.cancelled.move_to_end(task_id)
        while len(self.cancelled) > CANCELLED_KEPT:
            self.cancelled.popitem(last=False)
        running = self.running.get(task_id)
        if running:
            running.abort("cancelled")

    def _on_control(self, worker_type: str, msg: Msg) -> None:
        """"paused <RFC 3339 end>" holds the type's slots until then; "resumed" frees them and pulls again."""
        slots = self.slots_of[worker_type]
        ended = self.pause_ends.pop(worker_type, None)
        if ended:
            ended.cancel()

        def resume() -> None:
            slots.unhold()
            for feed in self.feeds_of.get(worker_type, []):
                feed.repull()

        what, _, until = msg.data.decode(errors="replace").partition(" ")
        if what != "paused":
            resume()
            return
        slots.hold()
        try:
            end = _parse_rfc3339(until)
        except ValueError:
            return  # paused until resumed
        # A little after the server lifts it: a pull made while still paused would wait unserved.
        seconds = end - time.time() + 0.1
        if seconds > 0:
            self.pause_ends[worker_type] = asyncio.get_running_loop().call_later(min(seconds, 2**31 / 1000), resume)

    def _error(self, doing: str, error: BaseException) -> None:
        self.on_error(doing, error)

    # --- shutdown ------------------------------------------------------------------------

    def close(self) -> "asyncio.Task[None]":
        """Drains and disconnects; the same task every time (await it, or call it from a signal handler)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shutdown())
        return self._closing

    async def wait_closed(self) -> None:
        """Until close() has finished."""
        await self._closed.wait()

    async def _shutdown(self) -> None:
        self.state = "draining"
        try:
            # No longer live: broadcasts to "every worker" leave it out from now on.
            if self.presence_task:
                self.presence_task.cancel()
            for key in self.presence_keys:
                try:
                    await jetstream.publish(
                        self.nc, f"$KV.{names.WORKERS_BUCKET}.{key}", b"", {"KV-Operation": "DEL"}
                    )
                except Exception as error:  # noqa: BLE001 - it lapses after its TTL
                    self._error("deleting its presence", error)
            for timer in self.pause_ends.values():
                timer.cancel()
            # Stop pulling: what was pulled and never started goes back at once.
            await asyncio.gather(*(feed.stop() for feed in self.feeds), return_exceptions=True)
            # Running handlers finish within the grace period, then are interrupted and given back.
            if self.attempts:
                await asyncio.wait(set(self.attempts), timeout=self.shutdown_grace_ms / 1000)
            for running in list(self.running.values()):
                running.abort("shutdown")
            if self.attempts:
                await asyncio.wait(set(self.attempts))
            if self.throughput:
                self.throughput.close()
            for sub in self.subscriptions:
                try:
                    await sub.unsubscribe()  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - the connection is closing
                    pass
            await settle()
            if self.owns_connection:
                try:
                    await self.nc.drain()
                except NatsError:
                    # Reconnecting (or closed) at that moment: nothing is left to flush that a
                    # redelivery would not make good.
                    await self.nc.close()
        finally:
            self.state = "closed"
            self._closed.set()


def _parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()


def default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _log_as(worker_id: str) -> Callable[[str], None]:
    return lambda line: _log(f"worker {worker_id}: {line}")


def _print_error(worker_id: str) -> Callable[[str, BaseException], None]:
    def report(doing: str, error: BaseException) -> None:
        _log(f"worker {worker_id}: {doing}: {error}")

    return report


async def run_worker(
    services: Iterable[ServiceBinding],
    *,
    nats: Union[Settings, Client] = "nats://127.0.0.1:4222",
    worker_id: Optional[str] = None,
    concurrency: Optional[int] = None,
    prefetch: Optional[int] = None,
    shutdown_grace_ms: float = 30_000,
    result_subject: Optional[Callable[[str], str]] = None,
    on_error: Optional[Callable[[str, BaseException], None]] = None,
    max_result_bytes: Optional[int] = None,
) -> Worker:
    """Starts a worker serving `services` (what generated `implement_<service>()` functions return).

    `nats` is a URL, connection settings (as TASKWIRE_NATS_SETTINGS), or an open connection
    (then left open on close). `max_result_bytes` is the deployment's `retention.maxResultBytes`
    (1,000,000 unless given); a type's own `retention.max_result_bytes` wins. Returns once the
    worker serves every type: its streams and consumers exist (it waits for them) and its
    presence is written.
    """
    bindings = list(services)
    if not bindings:
        raise ValueError("run_worker: no services to serve")
    types = [b.worker_type for b in bindings]
    if len(set(types)) != len(types):
        raise ValueError(f"run_worker: a worker type is served twice: {types}")
    worker_id = worker_id or default_worker_id()
    if not WORKER_ID.match(worker_id):
        raise ValueError(f"worker id {worker_id!r} must be 1-64 letters, digits, '-' or '_'")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    owns = not isinstance(nats, Client)
    nc = nats if isinstance(nats, Client) else await connect(nats, f"taskwire worker {worker_id}", _log_as(worker_id))
    worker = Worker(
        nc,
        owns,
        bindings,
        worker_id,
        concurrency,
        prefetch,
        shutdown_grace_ms,
        result_subject,
        on_error or _print_error(worker_id),
        max_result_bytes,
    )
    try:
        await worker._start()
    except BaseException:
        await worker.close()
        raise
    return worker

