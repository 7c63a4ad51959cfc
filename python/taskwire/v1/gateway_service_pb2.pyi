from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("name", "via", "permissions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    via: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., via: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskType(_message.Message):
    __slots__ = ("worker_type", "service", "methods")
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    worker_type: str
    service: str
    methods: _containers.RepeatedCompositeFieldContainer[TaskMethod]
    def __init__(self, worker_type: _Optional[str] = ..., service: _Optional[str] = ..., methods: _Optional[_Iterable[_Union[TaskMethod, _Mapping]]] = ...) -> None: ...

class TaskMethod(_message.Message):
    __slots__ = ("name", "request_type", "response_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    request_type: str
    response_type: str
    def __init__(self, name: _Optional[str] = ..., request_type: _Optional[str] = ..., response_type: _Optional[str] = ...) -> None: ...

class ListTaskTypesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTaskTypesResponse(_message.Message):
    __slots__ = ("types", "files")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedCompositeFieldContainer[TaskType]
    files: _descriptor_pb2.FileDescriptorSet
    def __init__(self, types: _Optional[_Iterable[_Union[TaskType, _Mapping]]] = ..., files: _Optional[_Union[_descriptor_pb2.FileDescriptorSet, _Mapping]] = ...) -> None: ...
