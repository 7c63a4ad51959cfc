"""Taskwire workers in Python: typed handlers for task services, served from NATS JetStream.

Generate `<file>_taskwire.py` with protoc-gen-taskwire-python, implement its handler
Protocol, and serve it with `run_worker` or `python -m taskwire.worker_process`
(docs/python-workers.md).
"""

from .binding import MethodBinding, ServiceBinding
from .context import TaskContext
from .errors import NonRetryableError, TaskError
from .v1.task_pb2 import ErrorCode
from .worker import Worker, run_worker

__all__ = [
    "ErrorCode",
    "MethodBinding",
    "NonRetryableError",
    "ServiceBinding",
    "TaskContext",
    "TaskError",
    "Worker",
    "run_worker",
]
