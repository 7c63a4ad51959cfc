"""What a handler gets besides its request: the task, its attempt, progress and heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Mapping, Optional

from .errors import TaskError


class TaskContext:
    """The running attempt, as a handler sees it.

    The runtime stops a handler that must not go on (its deadline, a cancel, the
    worker's shutdown) by cancelling its asyncio task: `asyncio.CancelledError`
    is raised at its next `await`. `cancel_reason` then says why.
    """

    def __init__(
        self,
        *,
        task_id: str,
        worker_type: str,
        method: str,
        attempt: int,
        max_attempts: int,
        deadline: datetime,
        metadata: Mapping[str, str],
        endpoint: Optional[str],
        worker_id: str,
        on_progress: Callable[[float, str], None],
        on_heartbeat: Callable[[], None],
    ) -> None:
        self.task_id = task_id
        self.worker_type = worker_type
        self.method = method
        #: This attempt's number, from 1.
        self.attempt = attempt
        self.max_attempts = max_attempts
        #: When the attempt's `timeout` ends.
        self.deadline = deadline
        self.metadata = metadata
        #: The endpoint (this worker's id) of a broadcast copy; None for a queued task.
        self.endpoint = endpoint
        self.worker_id = worker_id
        self._on_progress = on_progress
        self._on_heartbeat = on_heartbeat
        self._cancel_reason: Optional[TaskError] = None

    @property
    def cancelled(self) -> bool:
        """Whether the attempt was told to stop (deadline, cancel, shutdown)."""
        return self._cancel_reason is not None

    @property
    def cancel_reason(self) -> Optional[TaskError]:
        return self._cancel_reason

    def progress(self, fraction: float, message: str = "") -> None:
        """Records progress in the task's status (best effort, coalesced); `fraction` in [0, 1]."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"progress fraction must be in [0, 1], got {fraction}")
        self._on_progress(fraction, message)

    def heartbeat(self) -> None:
        """Tells JetStream the attempt is alive now (it is also told every third of ack_wait)."""
        self._on_heartbeat()
