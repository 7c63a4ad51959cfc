"""Task errors: how a handler's failure is recorded, and whether it is retried."""

from __future__ import annotations

from typing import Optional

from .timestamps import now_timestamp
from .v1 import task_pb2
from .v1.task_pb2 import ErrorCode

# Codes that describe the input or the caller: a retry never succeeds.
_NOT_RETRYABLE = frozenset(
    {
        task_pb2.ERROR_CODE_INVALID_ARGUMENT,
        task_pb2.ERROR_CODE_NOT_FOUND,
        task_pb2.ERROR_CODE_ALREADY_EXISTS,
        task_pb2.ERROR_CODE_PERMISSION_DENIED,
        task_pb2.ERROR_CODE_UNAUTHENTICATED,
        task_pb2.ERROR_CODE_UNIMPLEMENTED,
        task_pb2.ERROR_CODE_OUT_OF_RANGE,
        task_pb2.ERROR_CODE_FAILED_PRECONDITION,
        task_pb2.ERROR_CODE_CANCELED,
    }
)


class TaskError(Exception):
    """A task's failure, with its code (`taskwire.v1.ErrorCode`) and whether another attempt may succeed.

    Retryable unless `retryable` says otherwise or the code describes the input
    or the caller (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ...).
    """

    def __init__(
        self,
        message: str,
        code: "ErrorCode.ValueType" = task_pb2.ERROR_CODE_UNKNOWN,
        retryable: Optional[bool] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = code not in _NOT_RETRYABLE if retryable is None else retryable

    @classmethod
    def of(cls, error: BaseException) -> "TaskError":
        """Whatever a handler raised: a TaskError as it is, anything else UNKNOWN (retryable) with its message."""
        if isinstance(error, TaskError):
            return error
        return cls(str(error) or type(error).__name__, task_pb2.ERROR_CODE_UNKNOWN)

    def to_message(self, attempt: int) -> task_pb2.TaskError:
        """The error as recorded in a task's status."""
        return task_pb2.TaskError(
            code=self.code,
            message=self.message,
            retryable=self.retryable,
            attempt=attempt,
            occurred_at=now_timestamp(),
        )


class NonRetryableError(TaskError):
    """Raised by a handler to end the task now: no further attempt, whatever its retry policy."""

    def __init__(self, message: str, code: "ErrorCode.ValueType" = task_pb2.ERROR_CODE_FAILED_PRECONDITION) -> None:
        super().__init__(message, code, retryable=False)
