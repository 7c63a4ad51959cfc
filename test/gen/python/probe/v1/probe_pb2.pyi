from taskwire.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("label", "sleep_ms", "fail_attempts", "non_retryable", "heartbeat", "ignore_signal", "tenant")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SLEEP_MS_FIELD_NUMBER: _ClassVar[int]
    FAIL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    IGNORE_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    label: str
    sleep_ms: int
    fail_attempts: int
    non_retryable: bool
    heartbeat: bool
    ignore_signal: bool
    tenant: str
    def __init__(self, label: _Optional[str] = ..., sleep_ms: _Optional[int] = ..., fail_attempts: _Optional[int] = ..., non_retryable: _Optional[bool] = ..., heartbeat: _Optional[bool] = ..., ignore_signal: _Optional[bool] = ..., tenant: _Optional[str] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("label", "attempt", "worker_id", "started_ms", "finished_ms")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    label: str
    attempt: int
    worker_id: str
    started_ms: float
    finished_ms: float
    def __init__(self, label: _Optional[str] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ..., started_ms: _Optional[float] = ..., finished_ms: _Optional[float] = ...) -> None: ...
