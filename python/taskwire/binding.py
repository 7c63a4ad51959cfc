"""What generated code hands the runtime: a worker type's settings and its typed handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Type

from google.protobuf.message import Message

from .context import TaskContext

Handler = Callable[[Any, TaskContext], Awaitable[Message]]


@dataclass(frozen=True)
class MethodBinding:
    """One rpc of a task service: its name (as in WorkItem.method), messages and handler."""

    name: str
    input: Type[Message]
    output: Type[Message]
    handler: Handler


@dataclass(frozen=True)
class ServiceBinding:
    """A task service's worker type, its `(taskwire.v1.worker)` settings, and a handler per method.

    Made by the generated `implement_<service>()`; `run_worker` and
    `python -m taskwire.worker_process` serve it.
    """

    worker_type: str
    concurrency: int
    max_concurrency: int
    max_rate: float
    methods: Mapping[str, MethodBinding]
    # `retention.status` of the type, in ms: its records get a Nats-TTL when shorter than the bucket's.
    status_ttl_ms: Optional[int] = None
    # `retention.max_result_bytes` of the type: a larger result fails the attempt.
    max_result_bytes: Optional[int] = None
