import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerTypeLoad(_message.Message):
    __slots__ = ("worker_type", "running", "concurrency")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    running: int
    concurrency: int
    def __init__(self, worker_type: _Optional[str] = ..., running: _Optional[int] = ..., concurrency: _Optional[int] = ...) -> None: ...

class WorkerInstance(_message.Message):
    __slots__ = ("worker_id", "host", "pid", "types", "started_at", "heartbeat_at", "runtime")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    host: str
    pid: int
    types: _containers.RepeatedCompositeFieldContainer[WorkerTypeLoad]
    started_at: _timestamp_pb2.Timestamp
    heartbeat_at: _timestamp_pb2.Timestamp
    runtime: str
    def __init__(self, worker_id: _Optional[str] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., types: _Optional[_Iterable[_Union[WorkerTypeLoad, _Mapping]]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runtime: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("worker_type",)
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    def __init__(self, worker_type: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInstance]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInstance, _Mapping]]] = ...) -> None: ...

class WatchWorkersRequest(_message.Message):
    __slots__ = ("worker_type",)
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    def __init__(self, worker_type: _Optional[str] = ...) -> None: ...

class WatchWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInstance]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInstance, _Mapping]]] = ...) -> None: ...
