"""The status bucket: each task's record, read by direct get and written conditionally."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from nats.aio.client import Client

from . import jetstream, names
from .background import spawn
from .jetstream import JetStreamError
from .timestamps import now_timestamp
from .v1 import task_pb2
from .v1.task_pb2 import TaskState, TaskStatus, WorkItem

TERMINAL_STATES = frozenset(
    {
        task_pb2.TASK_STATE_SUCCEEDED,
        task_pb2.TASK_STATE_FAILED,
        task_pb2.TASK_STATE_CANCELLED,
        task_pb2.TASK_STATE_EXPIRED,
        task_pb2.TASK_STATE_INCOMPLETE,
    }
)
# The states with entries of their own in the task index (INDEX_<type>).
INDEXED_STATES = TERMINAL_STATES | {task_pb2.TASK_STATE_RUNNING}


def is_terminal(state: "TaskState.ValueType") -> bool:
    return state in TERMINAL_STATES


def state_name(state: "TaskState.ValueType") -> str:
    """A state's name without its prefix, lower case: `succeeded`."""
    return task_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower()


@dataclass
class StoredStatus:
    """A record as read, with its revision for a conditional write."""

    status: TaskStatus
    revision: int


@dataclass(frozen=True)
class WrittenStatus:
    """A record as stored: its revision and bytes."""

    revision: int
    data: bytes


class StatusBucket:
    """Reads and writes `taskwire_status` records, and their task index entries (best effort)."""

    def __init__(self, nc: Client, ttls: Optional[dict[str, str]] = None) -> None:
        self.nc = nc
        # The Nats-TTL of worker types that keep their records for less than the bucket does.
        self.ttls = ttls or {}

    async def read_entry(self, task_id: str) -> tuple[Optional[TaskStatus], int]:
        """The record, if any, and the revision a write must name (a delete marker's too; 0 when empty)."""
        stored = await jetstream.direct_get_last(self.nc, names.STATUS_STREAM, names.status_subject(task_id))
        if stored is None:
            return None, 0
        if not stored.data:
            return None, stored.seq
        status = TaskStatus()
        status.ParseFromString(stored.data)
        return status, stored.seq

    async def read(self, task_id: str) -> Optional[StoredStatus]:
        status, revision = await self.read_entry(task_id)
        return StoredStatus(status, revision) if status is not None else None

    async def write(self, status: TaskStatus, expected_revision: int) -> Optional[WrittenStatus]:
        """Writes the record if it is still at `expected_revision` (0: none); None when someone wrote first."""
        status.updated_at.CopyFrom(now_timestamp())
        data = status.SerializeToString()
        headers = {"Nats-Expected-Last-Subject-Sequence": str(expected_revision)}
        ttl = self.ttls.get(status.worker_type)
        if ttl:
            headers["Nats-TTL"] = ttl
        try:
            ack = await jetstream.publish(self.nc, names.status_subject(status.task_id), data, headers)
        except JetStreamError as error:
            if error.wrong_last_sequence:
                return None
            raise
        if status.state in TERMINAL_STATES:
            self.index_state(status)
        return WrittenStatus(ack.seq, data)

    def index_state(self, status: TaskStatus) -> None:
        """Adds the task to its state's index entries, best effort (not awaited, not retried)."""
        if status.state not in INDEXED_STATES:
            return
        subject = names.index_state_subject(status.worker_type, state_name(status.state))

        async def add() -> None:
            try:
                await jetstream.publish(self.nc, subject, status.task_id.encode())
            except Exception:  # noqa: BLE001 - best effort: a task left out of a list is still found by id
                pass

        spawn(add())


def queued_status(work_item: WorkItem) -> TaskStatus:
    """The record of a task that has none yet, made from its WorkItem (PENDING)."""
    status = TaskStatus(
        task_id=work_item.task_id,
        worker_type=work_item.worker_type,
        method=work_item.method,
        state=task_pb2.TASK_STATE_PENDING,
        priority=work_item.priority,
        max_attempts=work_item.retry.max_attempts if work_item.HasField("retry") else 0,
        delivery=work_item.delivery,
        submitted_by=work_item.submitted_by,
        parent_task_id=work_item.parent_task_id,
        child_failure=work_item.child_failure,
        fairness_key=work_item.fairness_key,
    )
    for field in ("submitted_at", "not_before", "expires_at"):
        if work_item.HasField(field):
            getattr(status, "created_at" if field == "submitted_at" else field).CopyFrom(getattr(work_item, field))
    if work_item.HasField("submitted_at"):
        status.updated_at.CopyFrom(work_item.submitted_at)
    status.metadata.update(work_item.metadata)
    return status
