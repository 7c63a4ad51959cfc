"""A worker process: `python -m taskwire.worker_process`, configured by the environment every
Taskwire worker process reads.

- TASKWIRE_NATS (a URL) or TASKWIRE_NATS_SETTINGS (NatsConnectionSettings as JSON, secrets
  as {"env": NAME} or {"file": PATH});
- TASKWIRE_WORKER_MODULE: a Python file or a dotted module; every ServiceBinding it holds at
  module level, or in a module-level list or tuple, is served;
- TASKWIRE_WORKER_ID; optional TASKWIRE_CONCURRENCY and TASKWIRE_SHUTDOWN_GRACE_MS (30000);
- optional TASKWIRE_RETENTION (JSON): its `maxResultBytes`, the largest result kept, where a
  type sets none.
TASKWIRE_ACK_WAIT_MS and TASKWIRE_REPLICAS are not read: the worker provisions nothing.

It drains on SIGTERM or SIGINT and exits 0. Started by a supervisor (NODE_CHANNEL_FD set), it
writes `{"type":"ready",...}` on that channel once serving, and drains when the channel closes.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Optional

from .binding import ServiceBinding
from .connection import Settings, SettingsError, describe_servers
from .worker import Worker, run_worker

# The supervisor does not restart a process that exits so: it would fail again.
UNLOADABLE_EXIT_CODE = 78


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"worker process: {name} is not set")
    return value


def _number(name: str) -> Optional[int]:
    value = os.environ.get(name, "")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"worker process: {name} must be an integer, got {value!r}") from None


def load_module(spec: str) -> ModuleType:
    """A module by file path (ending in .py, or an existing file) or by dotted name."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        module_spec = importlib.util.spec_from_file_location(path.stem, path.resolve())
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def bindings_of(module: ModuleType) -> list[ServiceBinding]:
    """Every ServiceBinding at the module's top level, or in a top-level list or tuple."""
    found: list[ServiceBinding] = []
    for name, value in vars(module).items():
        if name.startswith("__"):
            continue
        candidates = value if isinstance(value, (list, tuple)) else [value]
        for candidate in candidates:
            if isinstance(candidate, ServiceBinding) and all(candidate is not b for b in found):
                found.append(candidate)
    return found


class SupervisorChannel:
    """The IPC fd a Node supervisor gives its child (NODE_CHANNEL_FD): JSON lines both ways."""

    def __init__(self, fd: int, on_closed: Callable[[], None]) -> None:
        self.fd = fd
        self.on_closed = on_closed
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def send(self, message: dict[str, object]) -> None:
        data = (json.dumps(message) + "\n").encode()
        os.set_blocking(self.fd, True)
        try:
            os.write(self.fd, data)
        finally:
            os.set_blocking(self.fd, False)

    def _readable(self) -> None:
        # What the supervisor sends is ignored; EOF means it is gone.
        try:
            if os.read(self.fd, 65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        asyncio.get_running_loop().remove_reader(self.fd)
        self.on_closed()


def _settings() -> Settings:
    raw = os.environ.get("TASKWIRE_NATS_SETTINGS", "")
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SystemExit(f"worker process: TASKWIRE_NATS_SETTINGS is not JSON: {error.msg}") from None
        if not isinstance(parsed, dict):
            raise SystemExit("worker process: TASKWIRE_NATS_SETTINGS must be a JSON object")
        return parsed
    return _env("TASKWIRE_NATS")


def _deployment_max_result_bytes() -> Optional[int]:
    """The deployment's `retention.maxResultBytes` (TASKWIRE_RETENTION, JSON): a type's own wins."""
    raw = os.environ.get("TASKWIRE_RETENTION", "")
    if not raw:
        return None
    try:
        value = json.loads(raw).get("maxResultBytes")
    except (ValueError, AttributeError):
        raise SystemExit("worker process: TASKWIRE_RETENTION must be a JSON object") from None
    if value is not None and (not isinstance(value, int) or value < 1):
        raise SystemExit(f"worker process: TASKWIRE_RETENTION's maxResultBytes must be a positive integer, got {value!r}")
    return value


async def main() -> int:
    worker_id = _env("TASKWIRE_WORKER_ID")
    module_spec = _env("TASKWIRE_WORKER_MODULE")
    try:
        services = bindings_of(load_module(module_spec))
    except Exception as error:  # noqa: BLE001 - it would fail so at every start
        print(f"worker {worker_id}: cannot load {module_spec}: {error}", file=sys.stderr, flush=True)
        return UNLOADABLE_EXIT_CODE
    if not services:
        print(f"worker {worker_id}: {module_spec} holds no ServiceBinding", file=sys.stderr, flush=True)
        return UNLOADABLE_EXIT_CODE
    settings = _settings()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    grace_ms = _number("TASKWIRE_SHUTDOWN_GRACE_MS") or 30_000

    def supervisor_gone() -> None:
        # Nobody will kill it a second after the grace period, as the supervisor does, and a
        # drain can wait on a NATS that does not answer: it ends itself then.
        stop.set()

        def give_up() -> None:
            message = f"worker {worker_id}: its supervisor is gone and draining took too long: exiting"
            print(message, file=sys.stderr, flush=True)
            os._exit(1)

        loop.call_later(grace_ms / 1000 + 1, give_up)

    channel_fd = os.environ.get("NODE_CHANNEL_FD")
    channel = SupervisorChannel(int(channel_fd), supervisor_gone) if channel_fd else None
    starting = asyncio.ensure_future(
        run_worker(
            services,
            nats=settings,
            worker_id=worker_id,
            concurrency=_number("TASKWIRE_CONCURRENCY"),
            shutdown_grace_ms=grace_ms,
            max_result_bytes=_deployment_max_result_bytes(),
        )
    )
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        # Stopped while it waited for NATS or its streams: nothing to drain.
        starting.cancel()
        return 0
    try:
        worker: Worker = starting.result()
    except (SettingsError, ValueError) as error:
        print(f"worker {worker_id}: {error}", file=sys.stderr, flush=True)
        return UNLOADABLE_EXIT_CODE
    except Exception as error:  # noqa: BLE001 - one line; a supervisor restarts it
        where = describe_servers(settings)
        print(f"worker {worker_id}: could not start (NATS at {where}): {error}", file=sys.stderr, flush=True)
        return 1
    if channel:
        channel.send({"type": "ready", "workerId": worker.id, "workerTypes": worker.worker_types})
    await stopping
    await worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
