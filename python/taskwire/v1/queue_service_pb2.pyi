import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from taskwire.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueInfo(_message.Message):
    __slots__ = ("worker_type", "queued", "running", "dead_letters", "paused", "paused_until", "max_queued", "scheduled", "storage", "oldest_queued_at", "workers")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_QUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    queued: int
    running: int
    dead_letters: int
    paused: bool
    paused_until: _timestamp_pb2.Timestamp
    max_queued: int
    scheduled: int
    storage: QueueStorage
    oldest_queued_at: _timestamp_pb2.Timestamp
    workers: int
    def __init__(self, worker_type: _Optional[str] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., dead_letters: _Optional[int] = ..., paused: _Optional[bool] = ..., paused_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_queued: _Optional[int] = ..., scheduled: _Optional[int] = ..., storage: _Optional[_Union[QueueStorage, _Mapping]] = ..., oldest_queued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., workers: _Optional[int] = ...) -> None: ...

class ThroughputPoint(_message.Message):
    __slots__ = ("start", "succeeded", "failed", "retried", "cancelled")
    START_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    succeeded: int
    failed: int
    retried: int
    cancelled: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., retried: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class QueueStorage(_message.Message):
    __slots__ = ("queued_bytes", "scheduled_bytes", "dead_letter_bytes", "index_bytes", "dead_letter_ttl", "index_ttl", "replicas")
    QUEUED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TTL_FIELD_NUMBER: _ClassVar[int]
    INDEX_TTL_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    queued_bytes: int
    scheduled_bytes: int
    dead_letter_bytes: int
    index_bytes: int
    dead_letter_ttl: _duration_pb2.Duration
    index_ttl: _duration_pb2.Duration
    replicas: int
    def __init__(self, queued_bytes: _Optional[int] = ..., scheduled_bytes: _Optional[int] = ..., dead_letter_bytes: _Optional[int] = ..., index_bytes: _Optional[int] = ..., dead_letter_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., index_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., replicas: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("status", "work_item", "dead_at")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORK_ITEM_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    status: _task_pb2.TaskStatus
    work_item: _task_pb2.WorkItem
    dead_at: _timestamp_pb2.Timestamp
    def __init__(self, status: _Optional[_Union[_task_pb2.TaskStatus, _Mapping]] = ..., work_item: _Optional[_Union[_task_pb2.WorkItem, _Mapping]] = ..., dead_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetQueueRequest(_message.Message):
    __slots__ = ("worker_type",)
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    def __init__(self, worker_type: _Optional[str] = ...) -> None: ...

class GetQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: QueueInfo
    def __init__(self, queue: _Optional[_Union[QueueInfo, _Mapping]] = ...) -> None: ...

class PauseQueueRequest(_message.Message):
    __slots__ = ("worker_type", "until")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    until: _timestamp_pb2.Timestamp
    def __init__(self, worker_type: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PauseQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: QueueInfo
    def __init__(self, queue: _Optional[_Union[QueueInfo, _Mapping]] = ...) -> None: ...

class ResumeQueueRequest(_message.Message):
    __slots__ = ("worker_type",)
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    def __init__(self, worker_type: _Optional[str] = ...) -> None: ...

class ResumeQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: QueueInfo
    def __init__(self, queue: _Optional[_Union[QueueInfo, _Mapping]] = ...) -> None: ...

class PurgeQueueRequest(_message.Message):
    __slots__ = ("worker_type", "reason")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    reason: str
    def __init__(self, worker_type: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PurgeQueueResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("worker_type", "page_size", "page_token")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    page_size: int
    page_token: str
    def __init__(self, worker_type: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDeadLetterRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetDeadLetterResponse(_message.Message):
    __slots__ = ("dead_letter",)
    DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    dead_letter: DeadLetter
    def __init__(self, dead_letter: _Optional[_Union[DeadLetter, _Mapping]] = ...) -> None: ...

class RetryDeadLetterRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class RetryDeadLetterResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _task_pb2.TaskStatus
    def __init__(self, status: _Optional[_Union[_task_pb2.TaskStatus, _Mapping]] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ("worker_type", "task_ids")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_type: _Optional[str] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class GetStoreRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStoreResponse(_message.Message):
    __slots__ = ("statuses", "bytes", "status_ttl", "replicas", "storage")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    STATUS_TTL_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    statuses: int
    bytes: int
    status_ttl: _duration_pb2.Duration
    replicas: int
    storage: str
    def __init__(self, statuses: _Optional[int] = ..., bytes: _Optional[int] = ..., status_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., replicas: _Optional[int] = ..., storage: _Optional[str] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueInfo]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueInfo, _Mapping]]] = ...) -> None: ...

class WatchQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueueSnapshot(_message.Message):
    __slots__ = ("queue", "throughput")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    queue: QueueInfo
    throughput: _containers.RepeatedCompositeFieldContainer[ThroughputPoint]
    def __init__(self, queue: _Optional[_Union[QueueInfo, _Mapping]] = ..., throughput: _Optional[_Iterable[_Union[ThroughputPoint, _Mapping]]] = ...) -> None: ...

class WatchQueuesResponse(_message.Message):
    __slots__ = ("queues", "at")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueSnapshot]
    at: _timestamp_pb2.Timestamp
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueSnapshot, _Mapping]]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetThroughputRequest(_message.Message):
    __slots__ = ("worker_type", "since")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, worker_type: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetThroughputResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[ThroughputPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[ThroughputPoint, _Mapping]]] = ...) -> None: ...
