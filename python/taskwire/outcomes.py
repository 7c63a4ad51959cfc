"""What follows a stored outcome: the dead letter, the TaskResult event, a broadcast's merged record."""

from __future__ import annotations

from typing import Callable, Literal, Optional, Union

from . import jetstream, names
from .errors import TaskError
from .status import StatusBucket, WrittenStatus, is_terminal, state_name
from .timestamps import now_timestamp
from .v1 import queue_service_pb2, task_pb2
from .v1.task_pb2 import EndpointResult, TaskStatus, WorkItem


async def dead_letter(bucket: StatusBucket, work_item: WorkItem, status: TaskStatus) -> None:
    """Stores a task that failed for good in DEAD_<type>, and waits for its PubAck."""
    letter = queue_service_pb2.DeadLetter(status=status, work_item=work_item, dead_at=now_timestamp())
    subject = names.dead_letter_subject(work_item.worker_type, names.id_token(work_item.task_id))
    await jetstream.publish(bucket.nc, subject, letter.SerializeToString())


def task_result_of(status: TaskStatus) -> task_pb2.TaskResult:
    """The TaskResult event of a stored terminal record."""
    result = task_pb2.TaskResult(
        task_id=status.task_id,
        attempt=status.attempt,
        worker_id=status.worker_id,
        worker_type=status.worker_type,
        method=status.method,
    )
    if status.state == task_pb2.TASK_STATE_SUCCEEDED and status.HasField("result"):
        result.result.CopyFrom(status.result)
    elif status.HasField("error"):
        result.error.CopyFrom(status.error)
    if status.HasField("started_at"):
        result.started_at.CopyFrom(status.started_at)
    if status.HasField("finished_at"):
        result.finished_at.CopyFrom(status.finished_at)
    return result


async def record_endpoint(
    bucket: StatusBucket, task_id: str, endpoint: str, update: Callable[[EndpointResult], None]
) -> Union[tuple[WrittenStatus, TaskStatus], Literal["superseded"]]:
    """Merges one endpoint's outcome into a broadcast's record (read again on a conflict); the write
    that leaves every endpoint terminal ends the task."""
    while True:
        current = await bucket.read(task_id)
        if current is None:
            raise TaskError(f"broadcast task {task_id} has no status record", task_pb2.ERROR_CODE_DATA_LOSS)
        status = current.status
        if is_terminal(status.state):
            return "superseded"
        own: Optional[EndpointResult] = next((e for e in status.endpoints if e.endpoint == endpoint), None)
        if own is None:
            own = status.endpoints.add(endpoint=endpoint, state=task_pb2.TASK_STATE_PENDING)
        update(own)
        if all(is_terminal(e.state) for e in status.endpoints):
            failed = [e for e in status.endpoints if e.state != task_pb2.TASK_STATE_SUCCEEDED]
            status.finished_at.CopyFrom(now_timestamp())
            if not failed:
                status.state = task_pb2.TASK_STATE_SUCCEEDED
                if status.endpoints[0].HasField("result"):
                    status.result.CopyFrom(status.endpoints[0].result)
            else:
                status.state = task_pb2.TASK_STATE_FAILED
                why = ", ".join(
                    f"{e.endpoint} ({e.error.message if e.HasField('error') else state_name(e.state).upper()})"
                    for e in failed
                )
                status.error.CopyFrom(
                    task_pb2.TaskError(
                        code=failed[0].error.code if failed[0].HasField("error") else task_pb2.ERROR_CODE_UNKNOWN,
                        message=f"failed on {why}",
                        occurred_at=now_timestamp(),
                    )
                )
        elif status.state == task_pb2.TASK_STATE_PENDING:
            status.state = task_pb2.TASK_STATE_RUNNING
        written = await bucket.write(status, current.revision)
        if written:
            return written, status
