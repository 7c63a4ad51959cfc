import datetime

from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from taskwire.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Storage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORAGE_UNSPECIFIED: _ClassVar[Storage]
    STORAGE_FILE: _ClassVar[Storage]
    STORAGE_MEMORY: _ClassVar[Storage]
STORAGE_UNSPECIFIED: Storage
STORAGE_FILE: Storage
STORAGE_MEMORY: Storage
WORKER_FIELD_NUMBER: _ClassVar[int]
worker: _descriptor.FieldDescriptor
TASK_FIELD_NUMBER: _ClassVar[int]
task: _descriptor.FieldDescriptor
SCHEDULE_FIELD_NUMBER: _ClassVar[int]
schedule: _descriptor.FieldDescriptor
FIELD_FIELD_NUMBER: _ClassVar[int]
field: _descriptor.FieldDescriptor

class WorkerOptions(_message.Message):
    __slots__ = ("type", "concurrency", "defaults", "max_concurrency", "max_rate", "max_queued", "storage", "replicas", "retention", "key_limits")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    KEY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    type: str
    concurrency: int
    defaults: TaskOptions
    max_concurrency: int
    max_rate: float
    max_queued: int
    storage: Storage
    replicas: int
    retention: Retention
    key_limits: KeyLimits
    def __init__(self, type: _Optional[str] = ..., concurrency: _Optional[int] = ..., defaults: _Optional[_Union[TaskOptions, _Mapping]] = ..., max_concurrency: _Optional[int] = ..., max_rate: _Optional[float] = ..., max_queued: _Optional[int] = ..., storage: _Optional[_Union[Storage, str]] = ..., replicas: _Optional[int] = ..., retention: _Optional[_Union[Retention, _Mapping]] = ..., key_limits: _Optional[_Union[KeyLimits, _Mapping]] = ...) -> None: ...

class KeyLimits(_message.Message):
    __slots__ = ("max_concurrency", "max_rate")
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_RATE_FIELD_NUMBER: _ClassVar[int]
    max_concurrency: int
    max_rate: float
    def __init__(self, max_concurrency: _Optional[int] = ..., max_rate: _Optional[float] = ...) -> None: ...

class Retention(_message.Message):
    __slots__ = ("status", "dead_letters", "max_result_bytes")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULT_BYTES_FIELD_NUMBER: _ClassVar[int]
    status: _duration_pb2.Duration
    dead_letters: _duration_pb2.Duration
    max_result_bytes: int
    def __init__(self, status: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dead_letters: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_result_bytes: _Optional[int] = ...) -> None: ...

class TaskOptions(_message.Message):
    __slots__ = ("timeout", "retry", "priority", "delivery", "expires_after", "debounce", "singleton")
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_FIELD_NUMBER: _ClassVar[int]
    DEBOUNCE_FIELD_NUMBER: _ClassVar[int]
    SINGLETON_FIELD_NUMBER: _ClassVar[int]
    timeout: _duration_pb2.Duration
    retry: _task_pb2.RetryPolicy
    priority: _task_pb2.Priority
    delivery: _task_pb2.DeliveryMode
    expires_after: _duration_pb2.Duration
    debounce: _duration_pb2.Duration
    singleton: bool
    def __init__(self, timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry: _Optional[_Union[_task_pb2.RetryPolicy, _Mapping]] = ..., priority: _Optional[_Union[_task_pb2.Priority, str]] = ..., delivery: _Optional[_Union[_task_pb2.DeliveryMode, str]] = ..., expires_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., debounce: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., singleton: _Optional[bool] = ...) -> None: ...

class ScheduleDeclaration(_message.Message):
    __slots__ = ("id", "spec", "payload_json", "overlap", "catchup_window", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CATCHUP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: _task_pb2.ScheduleSpec
    payload_json: str
    overlap: _task_pb2.OverlapPolicy
    catchup_window: _duration_pb2.Duration
    description: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[_task_pb2.ScheduleSpec, _Mapping]] = ..., payload_json: _Optional[str] = ..., overlap: _Optional[_Union[_task_pb2.OverlapPolicy, str]] = ..., catchup_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class FieldOptions(_message.Message):
    __slots__ = ("required", "searchable", "fairness_key")
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    required: bool
    searchable: bool
    fairness_key: bool
    def __init__(self, required: _Optional[bool] = ..., searchable: _Optional[bool] = ..., fairness_key: _Optional[bool] = ...) -> None: ...
