from taskwire.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DigestRequest(_message.Message):
    __slots__ = ("text", "algorithm", "rounds")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    algorithm: str
    rounds: int
    def __init__(self, text: _Optional[str] = ..., algorithm: _Optional[str] = ..., rounds: _Optional[int] = ...) -> None: ...

class DigestResponse(_message.Message):
    __slots__ = ("hex", "rounds")
    HEX_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    hex: str
    rounds: int
    def __init__(self, hex: _Optional[str] = ..., rounds: _Optional[int] = ...) -> None: ...
