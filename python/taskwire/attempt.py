"""One delivery of a WorkItem, run to its end (protocol "The attempt", steps 1-8;
worker-runtime/run-attempt.ts and attempt.ts): its outcome is recorded in the status
bucket, then its message is settled. A crash before the record leaves the message
unacked, so JetStream redelivers it: at-least-once."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client
from nats.aio.msg import Msg

from . import names
from .background import spawn
from .binding import ServiceBinding
from .children import count_child
from .context import TaskContext
from .errors import TaskError
from .leases import Lease, Leases, adopt_key_lease
from .outcomes import dead_letter, record_endpoint
from .rules import (
    AbortCause,
    Delivery,
    Refusal,
    backoff_ms,
    copy_done,
    expiry_error,
    failure_verdict,
    mark_returned,
    max_attempts_of,
    overtaken,
    records_start,
    redelivery_verdict,
    settlement,
    spent_attempts,
    start_refusal,
    too_large_to_store,
)
from .status import StatusBucket, StoredStatus, is_terminal, queued_status
from .status_writer import FinishOutcome, Lost, StatusWriter
from .timestamps import duration_ms, now_timestamp
from .v1 import task_pb2
from .v1.task_pb2 import TaskStatus, WorkItem

# How an attempt ended. The throughput points count some of them (see throughput.py).
Outcome = str

_ABORT_REASONS: dict[AbortCause, Callable[[TaskContext], TaskError]] = {
    "deadline": lambda ctx: TaskError(
        f"attempt {ctx.attempt} passed its deadline {ctx.deadline.isoformat(timespec='milliseconds')}",
        task_pb2.ERROR_CODE_DEADLINE_EXCEEDED,
    ),
    "cancelled": lambda ctx: TaskError("the task was cancelled", task_pb2.ERROR_CODE_CANCELED, retryable=False),
    "shutdown": lambda ctx: TaskError(f"worker {ctx.worker_id} is shutting down", task_pb2.ERROR_CODE_UNAVAILABLE),
    "superseded": lambda ctx: TaskError(
        "the task already ended (cancelled, or finished by another delivery)",
        task_pb2.ERROR_CODE_ABORTED,
        retryable=False,
    ),
    "overtaken": lambda ctx: TaskError(
        "a later delivery of the task, to another worker, has it now", task_pb2.ERROR_CODE_ABORTED, retryable=False
    ),
}


class Running:
    """A handler that runs: stopped by cancelling its asyncio task, the first cause kept."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.task: Optional[asyncio.Task[Message]] = None
        self.cause: Optional[AbortCause] = None

    def abort(self, cause: AbortCause) -> None:
        if self.cause:
            return
        self.cause = cause
        self.ctx._cancel_reason = _ABORT_REASONS[cause](self.ctx)
        if self.task:
            self.task.cancel()


@dataclass
class AttemptEnvironment:
    """What one worker type's attempts share."""

    nc: Client
    bucket: StatusBucket
    binding: ServiceBinding
    worker_id: str
    ack_wait_ms: float
    heartbeat_s: float
    max_result_bytes: int
    running: dict[str, Running]
    cancelled: "OrderedDict[str, None]"
    draining: Callable[[], bool]
    paused: Callable[[], bool]
    report_result: Callable[[TaskStatus, bytes], None]
    count: Callable[[str, Outcome], None]
    on_error: Callable[[str, BaseException], None]
    concurrency: Optional[Leases] = None
    rate: Optional[Leases] = None
    status_interval_s: float = 0.25


def delivery_of(msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(meta.sequence.stream, meta.num_delivered)


async def _quietly(call: "asyncio.Future[None] | asyncio.Task[None] | object") -> None:
    try:
        await call  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - a settle of a message already settled, or a lost connection
        pass


def ack(msg: Msg) -> None:
    spawn(_quietly(msg.ack()))


def nak(msg: Msg, delay_ms: Optional[float] = None) -> None:
    spawn(_quietly(msg.nak(delay=delay_ms / 1000 if delay_ms else None)))


def in_progress(msg: Msg) -> None:
    spawn(_quietly(msg.in_progress()))


async def was_cancelled(env: AttemptEnvironment, task_id: str) -> bool:
    """Whether a task whose id came on the cancel subject was cancelled: its record is terminal."""
    if task_id not in env.cancelled:
        return False
    stored = await env.bucket.read(task_id)
    if stored and is_terminal(stored.status.state):
        return True
    env.cancelled.pop(task_id, None)
    return False


async def give_back(bucket: StatusBucket, msg: Msg) -> Outcome:
    """Gives a delivery back without spending an attempt (step 8): the record says the attempts
    spent and one more delivery given back, then a nak. Broadcast copies are only nak'ed."""
    try:
        work_item = WorkItem()
        work_item.ParseFromString(msg.data)
        if work_item.endpoint:
            nak(msg)
            return "requeued"
        mine = delivery_of(msg)
        record: Optional[StoredStatus] = await bucket.read(work_item.task_id) if mine.count > 1 else None
        if record is None:
            record = StoredStatus(queued_status(work_item), 0)
        for _ in range(2):
            if is_terminal(record.status.state):
                ack(msg)
                return "superseded"
            if overtaken(record.status, mine):
                return "overtaken"
            mark_returned(
                record.status, spent_attempts(record.status if record.revision else None, work_item, mine.count)
            )
            record.status.delivery_sequence = mine.sequence
            record.status.delivery_count = mine.count
            if await bucket.write(record.status, record.revision):
                break
            again = await bucket.read(work_item.task_id)
            if again is None:
                break
            record = again
    except Exception:  # noqa: BLE001 - undecodable, or NATS unreachable: given back all the same
        pass
    nak(msg)
    return "requeued"


async def run_attempt(env: AttemptEnvironment, msg: Msg) -> None:
    """Runs one delivery to its end; raises (leaving the message unacked) when no outcome could be recorded."""
    work_item = WorkItem()
    try:
        work_item.ParseFromString(msg.data)
    except DecodeError as error:
        spawn(_quietly(msg.term()))
        env.on_error(f"undecodable WorkItem on {msg.subject}", error)
        return
    attempt = Attempt(env, msg, work_item)
    outcome = await attempt.run()
    env.count(work_item.worker_type, outcome)


class Attempt:
    def __init__(self, env: AttemptEnvironment, msg: Msg, work_item: WorkItem) -> None:
        self.env = env
        self.msg = msg
        self.work_item = work_item
        self.task_id = work_item.task_id
        self.endpoint = work_item.endpoint
        self.delivery = delivery_of(msg)
        self.attempt = self.delivery.count
        self.max_attempts = max_attempts_of(work_item)
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.last_beat = self.started
        self.lapsed = False
        self.running: Optional[Running] = None
        self.packed: Optional[AnyMessage] = None
        self.writer: Optional[StatusWriter] = None

    # --- admission (steps 1, 2, 7) -------------------------------------------------------

    async def run(self) -> Outcome:
        env = self.env
        if env.draining():
            return await give_back(env.bucket, self.msg)
        if await was_cancelled(env, self.task_id):
            ack(self.msg)  # its CANCELLED record is the canceller's
            return "cancelled"
        stored: Optional[StoredStatus] = None
        if self.endpoint:
            current = await env.bucket.read(self.task_id)
            if copy_done(current.status if current else None, self.endpoint):
                ack(self.msg)
                return "superseded"
        else:
            resumed = self.work_item.resumes > 0
            if self.delivery.count > 1 or resumed:
                stored = await env.bucket.read(self.task_id)
            record = stored.status if stored else None
            verdict = redelivery_verdict(record, self.delivery)
            if verdict == "overtaken":
                return "overtaken"
            if resumed and self.delivery.count == 1 and record is not None:
                self.attempt = max(1, record.attempt)
            else:
                self.attempt = spent_attempts(record, self.work_item, self.delivery.count) + 1
            if verdict == "finished" and stored is not None:
                return await self._finish_found(stored.status)
        self._make_writer(stored)
        refusal = start_refusal(self.work_item, self.attempt, time.time() * 1000)
        if refusal:
            return await self._refuse(refusal)
        held: list[Lease] = []
        failure: Optional[TaskError] = None
        try:
            if not await self._take_limits(held):
                return "requeued"
            begun = await self._begin()
            if begun is not None:
                return begun
            failure = await self._execute(held)
        finally:
            for lease in held:
                spawn(lease.release())
        return await self._conclude(failure)

    async def _finish_found(self, status: TaskStatus) -> Outcome:
        """A terminal record found by a redelivery: what its attempt may have left undone, then the ack."""
        if status.state == task_pb2.TASK_STATE_FAILED:
            await dead_letter(self.env.bucket, self.work_item, status)
        self._announce(status, status.SerializeToString())
        await count_child(self.env.bucket, status)
        ack(self.msg)
        return "superseded"

    def _make_writer(self, stored: Optional[StoredStatus]) -> None:
        status = stored.status if stored else queued_status(self.work_item)
        status.attempt = self.attempt
        status.max_attempts = self.max_attempts
        status.state = task_pb2.TASK_STATE_RUNNING
        status.started_at.CopyFrom(now_timestamp())
        status.worker_id = self.env.worker_id
        status.delivery_sequence = self.delivery.sequence
        status.delivery_count = self.delivery.count

        def lost(cause: Lost) -> None:
            # Cancelled while it ran, or redelivered elsewhere while this worker stopped answering.
            if self.running:
                self.running.abort(cause)

        self.writer = StatusWriter(
            self.env.bucket,
            status,
            stored.revision if stored else 0,
            self.env.status_interval_s,
            lambda error: self.env.on_error(f"writing the status of {self.task_id}", error),
            lost,
        )

    @property
    def status(self) -> TaskStatus:
        assert self.writer is not None
        return self.writer.status

    async def _refuse(self, refusal: Refusal) -> Outcome:
        if refusal.state == task_pb2.TASK_STATE_FAILED:
            # Attempts beyond the policy: the last one started and its worker died.
            self.attempt = self.max_attempts
            self.status.attempt = self.max_attempts
        return await self._end(refusal.state, refusal.outcome, refusal.error)

    # --- step 5: limits, the recorded start ----------------------------------------------

    async def _take_limits(self, held: list[Lease]) -> bool:
        env = self.env

        async def waiting() -> None:
            while True:
                if env.draining():
                    raise TaskError("the worker is draining", task_pb2.ERROR_CODE_UNAVAILABLE)
                if not env.paused():
                    self._alive()
                    return
                if time.monotonic() - self.last_beat >= env.heartbeat_s:
                    self._alive()
                await asyncio.sleep(0.25)

        headers = self.msg.headers or {}
        key_lease = next((v for k, v in headers.items() if k.lower() == names.KEY_LEASE_HEADER.lower()), None)
        if key_lease:
            adopted = adopt_key_lease(env.nc, self.work_item.worker_type, key_lease, env.ack_wait_ms, env.worker_id)
            if adopted:
                held.append(adopted)
        try:
            if env.concurrency or env.rate:
                # A paused type starts nothing: no lease is taken while it is.
                await waiting()
            if env.concurrency:
                lease = await env.concurrency.acquire(env.worker_id, waiting)
                if lease:
                    held.append(lease)
            if env.rate:
                await env.rate.acquire(env.worker_id, waiting)
            return True
        except Exception:  # noqa: BLE001 - draining, or a lease publish failed: not started, given back
            await give_back(env.bucket, self.msg)
            return False

    async def _begin(self) -> Optional[Outcome]:
        """A cancel or the expiry that came while it waited, then the recorded start; None to run."""
        if await self._cancelled_now():
            return "cancelled"
        if self.env.concurrency or self.env.rate:
            late = expiry_error(self.work_item, time.time() * 1000)
            if late:
                return await self._end(task_pb2.TASK_STATE_EXPIRED, "expired", late)
        if self.endpoint or not records_start(self.delivery.count, self.max_attempts):
            return None
        assert self.writer is not None
        try:
            begun: FinishOutcome = await self.writer.begin()
        except Exception as error:  # noqa: BLE001 - the write may be stored with its PubAck lost: undo it
            try:
                undone = await self.writer.finish(lambda s: mark_returned(s, self.attempt - 1))
            except Exception:  # noqa: BLE001 - best effort
                undone = None
            if undone == "overtaken":
                return "overtaken"
            nak(self.msg)
            self.env.on_error(f"recording the start of {self.task_id}", error)
            return "requeued"
        if begun in ("superseded", "overtaken"):
            return self._settle(task_pb2.TASK_STATE_RUNNING, str(begun))
        # Cancelled while its start was written: its id came before the handler ran.
        if await self._cancelled_now():
            return "cancelled"
        return None

    async def _cancelled_now(self) -> bool:
        if not await was_cancelled(self.env, self.task_id):
            return False
        ack(self.msg)
        return True

    # --- the handler ---------------------------------------------------------------------

    async def _execute(self, leases: list[Lease]) -> Optional[TaskError]:
        env, work_item = self.env, self.work_item
        assert self.writer is not None
        timeout_ms = duration_ms(work_item.timeout) if work_item.HasField("timeout") else 60_000.0
        # From the attempt's start, its wait for limits included.
        deadline = self.started_wall + timeout_ms / 1000

        def on_progress(fraction: float, message: str) -> None:
            if self.endpoint:
                return  # a broadcast's record holds outcomes per endpoint, not progress
            self.status.progress.CopyFrom(
                task_pb2.Progress(fraction=fraction, message=message, updated_at=now_timestamp())
            )
            self._touch()

        ctx = TaskContext(
            task_id=self.task_id,
            worker_type=work_item.worker_type,
            method=work_item.method,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            deadline=datetime.fromtimestamp(deadline, timezone.utc),
            metadata=dict(work_item.metadata),
            endpoint=self.endpoint or None,
            worker_id=env.worker_id,
            on_progress=on_progress,
            on_heartbeat=self._alive,
        )
        running = Running(ctx)
        self.running = running
        env.running[self.task_id] = running
        loop = asyncio.get_running_loop()
        deadline_timer = loop.call_later(max(0.0, deadline - time.time()), running.abort, "deadline")

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(env.heartbeat_s)
                if running.cause == "overtaken":
                    return  # its +WPI would keep alive a message that is the later delivery's
                self._alive()
                for lease in leases:
                    spawn(_quietly(lease.renew()))

        beating = asyncio.ensure_future(heartbeat())
        # RUNNING, unless the handler finishes within the interval; also how a worker that
        # missed a cancel message learns of the cancel.
        self._touch()
        try:
            method = env.binding.methods.get(work_item.method)
            if method is None:
                raise TaskError(
                    f"this worker has no handler for {work_item.worker_type}/{work_item.method}",
                    task_pb2.ERROR_CODE_UNIMPLEMENTED,
                    retryable=False,
                )
            request = method.input()
            try:
                request.ParseFromString(work_item.payload)
            except DecodeError as error:
                raise TaskError(
                    f"payload is not a valid {method.input.DESCRIPTOR.full_name}: {error}",
                    task_pb2.ERROR_CODE_INVALID_ARGUMENT,
                    retryable=False,
                ) from error
            running.task = asyncio.ensure_future(method.handler(request, ctx))
            if running.cause:
                running.task.cancel()
            await asyncio.wait({running.task})
            if ctx.cancel_reason:
                raise ctx.cancel_reason  # a result after cancel or deadline does not count
            if running.task.cancelled():
                raise TaskError("the handler's asyncio task was cancelled", task_pb2.ERROR_CODE_CANCELED)
            result = running.task.result()
            if isinstance(result, dict):
                result = method.output(**result)
            if not isinstance(result, method.output):
                raise TaskError(
                    f"the handler returned {type(result).__name__}, not {method.output.DESCRIPTOR.full_name}",
                    task_pb2.ERROR_CODE_INTERNAL,
                )
            packed = AnyMessage()
            packed.Pack(result)
            if len(packed.value) > env.max_result_bytes:
                raise TaskError(
                    f"its result is {len(packed.value)} bytes, over the {env.max_result_bytes} kept "
                    "(retention.max_result_bytes)",
                    task_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
                    retryable=False,
                )
            self.packed = packed
            return None
        except Exception as thrown:  # noqa: BLE001 - the handler's failure, whatever it is
            return ctx.cancel_reason or TaskError.of(thrown)
        finally:
            deadline_timer.cancel()
            beating.cancel()
            if env.running.get(self.task_id) is running:
                del env.running[self.task_id]

    # --- step 6: record, then settle -----------------------------------------------------

    async def _conclude(self, failure: Optional[TaskError]) -> Outcome:
        if failure is None:
            try:
                return await self._end(task_pb2.TASK_STATE_SUCCEEDED, "succeeded", None, self._keep_result)
            except Exception as error:
                # A record the server cannot take would fail so at every attempt: it fails, saying why.
                if not too_large_to_store(error):
                    raise
                self.status.ClearField("result")
                failure = TaskError(
                    f"its result is too large to store: {error} (the status record holds the result)",
                    task_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
                    retryable=False,
                )
        cause = self.running.cause if self.running else None
        verdict = failure_verdict(cause, failure, self.attempt, self.work_item)
        if verdict == "requeue":
            return await self._requeue()
        if verdict in ("cancelled", "superseded"):
            ack(self.msg)  # the canceller recorded CANCELLED
            return verdict
        if verdict == "overtaken":
            return "overtaken"
        if verdict == "retry":
            return await self._end(task_pb2.TASK_STATE_RETRYING, "retrying", failure)
        return await self._end(task_pb2.TASK_STATE_FAILED, "failed", failure)

    def _keep_result(self) -> None:
        assert self.packed is not None
        self.status.result.CopyFrom(self.packed)
        self.status.ClearField("error")
        if self.status.HasField("progress"):
            self.status.progress.fraction = 1

    async def _requeue(self) -> Outcome:
        """Gives back an attempt this worker's shutdown interrupted: not the task's fault, no attempt spent."""
        outcome: Outcome = "requeued"
        if not self.endpoint:
            assert self.writer is not None
            try:
                finished = await self.writer.finish(lambda s: mark_returned(s, self.attempt - 1))
                if finished in ("superseded", "overtaken"):
                    return self._settle(self.status.state, str(finished))
            except Exception:  # noqa: BLE001 - not written: nak'ed all the same, as a crash would
                pass
        if not self._stalled():
            nak(self.msg)
        return outcome

    async def _end(
        self,
        state: "task_pb2.TaskState.ValueType",
        outcome: Outcome,
        error: Optional[TaskError] = None,
        fill: Optional[Callable[[], None]] = None,
    ) -> Outcome:
        """Records the outcome, then settles the message."""
        if self.endpoint:
            return await self._end_copy(state, outcome, error)
        assert self.writer is not None
        attempt = self.attempt

        def update(s: TaskStatus) -> None:
            s.state = state
            if is_terminal(state):
                s.finished_at.CopyFrom(now_timestamp())
            if error:
                s.error.CopyFrom(error.to_message(attempt))
                if state == task_pb2.TASK_STATE_RETRYING:
                    s.error_history.append(s.error)
            if fill:
                fill()

        written = await self.writer.finish(update)
        if written in ("superseded", "overtaken"):
            return self._settle(state, str(written))
        assert not isinstance(written, str)
        ended = self.writer.status
        # Failed for good: dead-lettered before the ack, so a crash in between redelivers the
        # task, which then finds the FAILED record and dead-letters it.
        if state == task_pb2.TASK_STATE_FAILED:
            await dead_letter(self.env.bucket, self.work_item, ended)
        if is_terminal(state):
            self._announce(ended, written.data)
            await count_child(self.env.bucket, ended)
        return self._settle(state, outcome)

    async def _end_copy(
        self, state: "task_pb2.TaskState.ValueType", outcome: Outcome, error: Optional[TaskError]
    ) -> Outcome:
        """Records a broadcast copy's outcome in its endpoint's part of the task's record."""

        def update(result: task_pb2.EndpointResult) -> None:
            result.state = state
            result.finished_at.CopyFrom(now_timestamp())
            result.ClearField("error")
            result.ClearField("result")
            if error:
                result.error.CopyFrom(error.to_message(self.attempt))
            if state == task_pb2.TASK_STATE_SUCCEEDED and self.packed is not None:
                result.result.CopyFrom(self.packed)

        recorded = await record_endpoint(self.env.bucket, self.task_id, self.endpoint, update)
        if recorded == "superseded":
            return self._settle(state, "superseded")
        written, status = recorded
        if is_terminal(status.state):
            self._announce(status, written.data)
        return self._settle(state, outcome)

    def _announce(self, status: TaskStatus, data: bytes) -> None:
        """Tells the submitter and the result subject of a stored terminal record (best effort)."""
        if self.work_item.notify_subject:
            spawn(_quietly(self.env.nc.publish(self.work_item.notify_subject, data)))
        self.env.report_result(status, data)

    def _settle(self, state: "task_pb2.TaskState.ValueType", outcome: Outcome) -> Outcome:
        how = settlement(state, outcome, self.work_item.HasField("retry"), self._stalled())
        if how == "retry":
            nak(self.msg, backoff_ms(self.work_item.retry, self.attempt))
        elif how == "ack":
            ack(self.msg)
        return outcome

    # --- heartbeats ----------------------------------------------------------------------

    def _touch(self) -> None:
        if not self.endpoint and self.writer:
            self.writer.touch()

    def _alive(self) -> None:
        """+WPI. Silent for longer than ack_wait (this process stalled), a best-effort write finds
        out whether another delivery has the task now, and a retry is not nak'ed (see settlement)."""
        now = time.monotonic()
        if (now - self.last_beat) * 1000 > self.env.ack_wait_ms and not self.lapsed:
            self.lapsed = True
            self._touch()
        self.last_beat = now
        in_progress(self.msg)

    def _stalled(self) -> bool:
        return self.lapsed or (time.monotonic() - self.last_beat) * 1000 > self.env.ack_wait_ms

