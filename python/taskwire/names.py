"""Every NATS name a worker uses, as sdk/core/names.ts makes them (docs/protocol.md)."""

PRIORITIES = ("high", "normal", "low")
STATUS_BUCKET = "taskwire_status"
STATUS_STREAM = f"KV_{STATUS_BUCKET}"
WORKERS_BUCKET = "taskwire_workers"
KEY_LEASE_HEADER = "Taskwire-Key-Lease"


def id_token(task_id: str) -> str:
    """The part of a task id after its worker type."""
    return task_id[task_id.index(".") + 1 :]


def worker_type_of(task_id: str) -> str:
    """The worker type a task id starts with."""
    return task_id[: task_id.index(".")]


def stream_name(worker_type: str) -> str:
    return f"TASKS_{worker_type}"


def consumer_name(worker_type: str, priority: str) -> str:
    return f"{worker_type}_{priority}"


def task_subject(worker_type: str, priority: str, token: str) -> str:
    return f"taskwire.task.{worker_type}.{priority}.{token}"


def status_subject(task_id: str) -> str:
    return f"$KV.{STATUS_BUCKET}.{task_id}"


def cancel_subject(worker_type: str) -> str:
    return f"taskwire.cancel.{worker_type}"


def control_subject(worker_type: str) -> str:
    return f"taskwire.control.{worker_type}"


def result_subject(worker_type: str) -> str:
    return f"taskwire.result.{worker_type}"


def throughput_subject(worker_type: str) -> str:
    return f"taskwire.throughput.{worker_type}"


def limit_stream(worker_type: str) -> str:
    return f"LIMITS_{worker_type}"


def limit_subject(worker_type: str, kind: str, n: int) -> str:
    return f"taskwire.limit.{worker_type}.{kind}.{n}"


def broadcast_stream(worker_type: str) -> str:
    return f"BCAST_{worker_type}"


def broadcast_filter(worker_type: str, endpoint: str) -> str:
    return f"taskwire.bcast.{worker_type}.{endpoint}.*"


def endpoint_consumer_name(worker_type: str, endpoint: str) -> str:
    return f"{worker_type}_ep_{endpoint}"


def dead_letter_subject(worker_type: str, token: str) -> str:
    return f"taskwire.dead.{worker_type}.{token}"


def index_state_subject(worker_type: str, state: str) -> str:
    return f"taskwire.index.{worker_type}.{state}"


def children_stream(worker_type: str) -> str:
    return f"CHILDREN_{worker_type}"


def children_counter(worker_type: str, token: str, counter: str) -> str:
    return f"taskwire.children.{worker_type}.{token}.{counter}"


def fatal_child_subject(worker_type: str, token: str) -> str:
    return f"taskwire.index.{worker_type}.children.{token}.fatal"


def index_stream(worker_type: str) -> str:
    return f"INDEX_{worker_type}"


def scheduler_stream(worker_type: str) -> str:
    return f"SCHED_{worker_type}"


def parked_subject(worker_type: str, token: str) -> str:
    return f"taskwire.sched.{worker_type}.park.{token}"
