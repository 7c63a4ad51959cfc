"""The decisions of one attempt, as pure functions of what it read (worker-runtime/attempt-rules.ts)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Optional

from .errors import TaskError
from .status import is_terminal
from .timestamps import duration_ms, iso, timestamp_ms
from .v1 import task_pb2
from .v1.task_pb2 import RetryPolicy, TaskStatus, WorkItem

# Why a running attempt's handler was stopped.
AbortCause = Literal["deadline", "cancelled", "shutdown", "superseded", "overtaken"]


@dataclass(frozen=True)
class Delivery:
    """The delivery a record names as its last writer."""

    sequence: int
    count: int


def overtaken(record: TaskStatus, mine: Delivery) -> bool:
    """Whether a later delivery than `mine` wrote this non-terminal record: that delivery has the task."""
    if is_terminal(record.state):
        return False
    if record.delivery_sequence != mine.sequence:
        return record.delivery_sequence > mine.sequence
    return record.delivery_count > mine.count


def redelivery_verdict(
    record: Optional[TaskStatus], mine: Delivery
) -> Literal["overtaken", "finished", "run"]:
    if record is None:
        return "run"
    if overtaken(record, mine):
        return "overtaken"
    return "finished" if is_terminal(record.state) else "run"


def copy_done(record: Optional[TaskStatus], endpoint: str) -> bool:
    """Whether a broadcast copy has nothing left to do: no record, the task ended, or its endpoint did."""
    if record is None or is_terminal(record.state):
        return True
    return any(e.endpoint == endpoint and is_terminal(e.state) for e in record.endpoints)


def max_attempts_of(work_item: WorkItem) -> int:
    return (work_item.retry.max_attempts if work_item.HasField("retry") else 0) or 1


def spent_attempts(record: Optional[TaskStatus], work_item: WorkItem, deliveries: int) -> int:
    """Attempts the task spent before this delivery (docs/protocol.md, step 1)."""
    if deliveries == 1:
        return 0
    if record is not None:
        return record.attempt
    return 1 if max_attempts_of(work_item) > 1 else 0


def records_start(deliveries: int, max_attempts: int) -> bool:
    """Whether a delivery records its start before its handler runs (step 5)."""
    return deliveries > 1 or max_attempts == 1


def expiry_error(work_item: WorkItem, now_ms: float) -> Optional[TaskError]:
    if not work_item.HasField("expires_at") or timestamp_ms(work_item.expires_at) > now_ms:
        return None
    return TaskError(
        f"not started before its expiry {iso(work_item.expires_at)}",
        task_pb2.ERROR_CODE_DEADLINE_EXCEEDED,
        retryable=False,
    )


@dataclass(frozen=True)
class Refusal:
    """Why an admitted attempt must not start, as its recorded outcome."""

    state: "task_pb2.TaskState.ValueType"
    outcome: str
    error: TaskError


def start_refusal(work_item: WorkItem, attempt: int, now_ms: float) -> Optional[Refusal]:
    expired = expiry_error(work_item, now_ms)
    if expired:
        return Refusal(task_pb2.TASK_STATE_EXPIRED, "expired", expired)
    most = max_attempts_of(work_item)
    if attempt <= most:
        return None
    error = TaskError(
        f"gave up after {most} attempt(s): the last ones were lost (worker crashed or stopped heartbeating)",
        task_pb2.ERROR_CODE_ABORTED,
        retryable=False,
    )
    return Refusal(task_pb2.TASK_STATE_FAILED, "failed", error)


def failure_verdict(
    cause: Optional[AbortCause], failure: TaskError, attempt: int, work_item: WorkItem
) -> Literal["requeue", "cancelled", "superseded", "overtaken", "retry", "fail"]:
    if cause == "shutdown":
        return "requeue"
    if cause in ("cancelled", "superseded", "overtaken"):
        return cause  # type: ignore[return-value]
    if failure.retryable and attempt < max_attempts_of(work_item) and work_item.HasField("retry"):
        return "retry"
    return "fail"


def settlement(
    state: "task_pb2.TaskState.ValueType", outcome: str, has_retry: bool, stalled: bool
) -> Literal["leave", "retry", "ack"]:
    """What becomes of the message once an outcome is stored (or found recorded by someone else)."""
    if outcome == "overtaken":
        return "leave"
    if state == task_pb2.TASK_STATE_RETRYING and outcome != "superseded" and has_retry:
        return "leave" if stalled else "retry"
    return "ack"


def mark_returned(status: TaskStatus, spent: int) -> None:
    """Makes the record queued again, with the attempts spent before the delivery, one more given back."""
    status.attempt = spent
    status.returned_deliveries += 1
    if status.state == task_pb2.TASK_STATE_RUNNING:
        status.state = task_pb2.TASK_STATE_RETRYING if len(status.error_history) > 0 else task_pb2.TASK_STATE_PENDING
    status.worker_id = ""


def backoff_ms(policy: RetryPolicy, failed_attempt: int) -> float:
    """min(initial * multiplier^(attempt-1), max) ± jitter."""
    initial = duration_ms(policy.initial_backoff) if policy.HasField("initial_backoff") else 1000.0
    most = duration_ms(policy.max_backoff) if policy.HasField("max_backoff") else 300_000.0
    base = min(initial * (policy.multiplier or 2) ** max(0, failed_attempt - 1), most)
    spread = base * policy.jitter * (2 * random.random() - 1)
    return max(0.0, round(base + spread))


def too_large_to_store(error: BaseException) -> bool:
    text = str(error).lower()
    return "max_payload size exceeded" in text or "message size exceeds maximum" in text or "maximum payload" in text
