"""google.protobuf Timestamp and Duration helpers."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def now_timestamp() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def timestamp_ms(ts: Timestamp) -> float:
    return ts.seconds * 1000 + ts.nanos / 1e6


def duration_ms(d: Duration) -> float:
    return d.seconds * 1000 + d.nanos / 1e6


def iso(ts: Timestamp) -> str:
    """RFC 3339 with milliseconds and Z, as JavaScript's toISOString."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts.seconds)) + f".{ts.nanos // 1_000_000:03d}Z"
