"""What a child task does when it ends: counts itself in its parent's counters (protocol "Child tasks")."""

from __future__ import annotations

import json

from . import jetstream, names
from .jetstream import JetStreamError
from .status import StatusBucket
from .v1 import task_pb2
from .v1.task_pb2 import TaskStatus, WorkItem

_FAILED_STATES = frozenset({task_pb2.TASK_STATE_FAILED, task_pb2.TASK_STATE_CANCELLED, task_pb2.TASK_STATE_EXPIRED})


async def _increment(bucket: StatusBucket, subject: str, message_id: str) -> int | None:
    """Adds 1 to a counter once per message id: its value after, or None for a repeat."""
    headers = {"Nats-Incr": "+1", "Nats-Msg-Id": message_id}
    ack = await jetstream.publish(bucket.nc, subject, b"", headers)
    return None if ack.duplicate or ack.val is None else int(ack.val)


async def _counter(bucket: StatusBucket, stream: str, subject: str) -> int:
    stored = await jetstream.direct_get_last(bucket.nc, stream, subject)
    return int(json.loads(stored.data)["val"]) if stored else 0


async def count_child(bucket: StatusBucket, child: TaskStatus) -> None:
    """Counts a child that ended (its terminal record stored) in its parent's counters, once however
    often it is called, and resumes the parent when it was the last one or a fatal failure."""
    parent_id = child.parent_task_id
    if not parent_id:
        return
    parent_type, token = names.worker_type_of(parent_id), names.id_token(parent_id)
    failed = child.state in _FAILED_STATES and child.child_failure != task_pb2.CHILD_FAILURE_IGNORE
    fatal = failed and child.child_failure in (task_pb2.CHILD_FAILURE_UNSPECIFIED, task_pb2.CHILD_FAILURE_FAIL_PARENT)
    if failed:
        await _increment(bucket, names.children_counter(parent_type, token, "failed"), f"{child.task_id}/failed")
    if fatal:
        await jetstream.publish(
            bucket.nc,
            names.fatal_child_subject(parent_type, token),
            child.task_id.encode(),
            {"Nats-Msg-Id": f"{child.task_id}/fatal"},
        )
    subject = names.children_counter(parent_type, token, "ended")
    value = await _increment(bucket, subject, f"{child.task_id}/ended")
    now = value if value is not None else await _counter(bucket, names.children_stream(parent_type), subject)
    if now == 0 or fatal:
        await resume_parent(bucket, parent_id)


async def resume_parent(bucket: StatusBucket, parent_id: str) -> None:
    """Queues a WAITING parent again once its children have all ended (or a fatal one did)."""
    stored = await bucket.read(parent_id)
    if stored is None or stored.status.state != task_pb2.TASK_STATE_WAITING:
        return
    parent_type, token = names.worker_type_of(parent_id), names.id_token(parent_id)
    spawned = stored.status.children.spawned
    ended = spawned + await _counter(
        bucket, names.children_stream(parent_type), names.children_counter(parent_type, token, "ended")
    )
    fatal = await jetstream.direct_get_last(
        bucket.nc, names.index_stream(parent_type), names.fatal_child_subject(parent_type, token)
    )
    if ended < spawned and fatal is None:
        return
    parked = await jetstream.direct_get_last(
        bucket.nc, names.scheduler_stream(parent_type), names.parked_subject(parent_type, token)
    )
    if parked is None:
        return
    work_item = WorkItem()
    work_item.ParseFromString(parked.data)
    work_item.resumes += 1
    priority = task_pb2.Priority.Name(work_item.priority).removeprefix("PRIORITY_").lower()
    if priority not in names.PRIORITIES:
        priority = "normal"
    try:
        await jetstream.publish(
            bucket.nc,
            names.task_subject(parent_type, priority, token),
            work_item.SerializeToString(),
            {"Nats-Msg-Id": f"{parent_id}/resume/{work_item.resumes}"},
        )
    except JetStreamError as error:
        # Queued already: by another resumer, which writes the record; or it is the parent's
        # own message, not yet acked, and the parent resumes itself once it is.
        if error.queued_already:
            return
        raise
    stored.status.state = task_pb2.TASK_STATE_PENDING
    await bucket.write(stored.status, stored.revision)
