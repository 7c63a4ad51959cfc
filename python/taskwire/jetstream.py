"""The few JetStream requests a worker makes, over plain NATS requests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from nats.aio.client import Client

REQUEST_TIMEOUT_S = 5.0


class JetStreamError(Exception):
    """A JetStream API error: its HTTP-like code, its error code and description."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description

    @property
    def wrong_last_sequence(self) -> bool:
        return "wrong last sequence" in self.description.lower()

    @property
    def queued_already(self) -> bool:
        return "maximum messages per subject exceeded" in self.description.lower()

    @property
    def not_found(self) -> bool:
        # 10059 stream not found, 10014 consumer not found.
        return self.err_code in (10059, 10014)


@dataclass(frozen=True)
class PubAck:
    seq: int
    duplicate: bool
    # A counter's value after an increment (Nats-Incr), as text.
    val: Optional[str]


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    data: bytes


def _check(reply: Mapping[str, Any]) -> Mapping[str, Any]:
    error = reply.get("error")
    if error:
        raise JetStreamError(int(error.get("code", 0)), int(error.get("err_code", 0)), str(error.get("description", "")))
    return reply


async def api(nc: Client, subject: str, request: Optional[Mapping[str, Any]] = None) -> Mapping[str, Any]:
    """A `$JS.API.` request; raises JetStreamError on an error reply."""
    payload = json.dumps(request).encode() if request is not None else b""
    msg = await nc.request(f"$JS.API.{subject}", payload, timeout=REQUEST_TIMEOUT_S)
    return _check(json.loads(msg.data))


async def publish(
    nc: Client, subject: str, data: bytes, headers: Optional[dict[str, str]] = None, timeout: float = REQUEST_TIMEOUT_S
) -> PubAck:
    """Publishes to a stream and waits for its PubAck; raises JetStreamError on a refusal."""
    msg = await nc.request(subject, data, timeout=timeout, headers=headers)
    reply = _check(json.loads(msg.data))
    val = reply.get("val")
    return PubAck(int(reply["seq"]), bool(reply.get("duplicate", False)), None if val is None else str(val))


async def direct_get_last(nc: Client, stream: str, subject: str) -> Optional[StoredMessage]:
    """The last message on a subject of a stream (direct get); None when there is none."""
    msg = await nc.request(f"$JS.API.DIRECT.GET.{stream}.{subject}", b"", timeout=REQUEST_TIMEOUT_S)
    headers = msg.headers or {}
    status = headers.get("Status")
    if status == "404":
        return None
    if status:
        raise JetStreamError(int(status), 0, headers.get("Description", f"direct get on {stream} failed"))
    return StoredMessage(int(headers["Nats-Sequence"]), msg.data)


async def delete_message(nc: Client, stream: str, seq: int) -> None:
    """Deletes one message of a stream by its sequence (not erased)."""
    await api(nc, f"STREAM.MSG.DELETE.{stream}", {"seq": seq, "no_erase": True})


async def consumer_info(nc: Client, stream: str, consumer: str) -> Mapping[str, Any]:
    return await api(nc, f"CONSUMER.INFO.{stream}.{consumer}")


async def stream_info(nc: Client, stream: str) -> Mapping[str, Any]:
    return await api(nc, f"STREAM.INFO.{stream}")


async def create_consumer(nc: Client, stream: str, config: Mapping[str, Any]) -> None:
    """Creates a durable consumer, or updates it to `config`."""
    await api(nc, f"CONSUMER.CREATE.{stream}.{config['durable_name']}", {"stream_name": stream, "config": config})


async def create_stream(nc: Client, config: Mapping[str, Any]) -> None:
    await api(nc, f"STREAM.CREATE.{config['name']}", config)
