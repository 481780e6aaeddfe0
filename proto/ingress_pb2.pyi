from google.protobuf import struct_pb2 as _struct_pb2
from endure.proto import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubscribeRequest(_message.Message):
    __slots__ = ("invocation_id", "stream", "from_offset", "from_offsets")
    class FromOffsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    stream: str
    from_offset: int
    from_offsets: _containers.ScalarMap[str, int]
    def __init__(self, invocation_id: _Optional[str] = ..., stream: _Optional[str] = ..., from_offset: _Optional[int] = ..., from_offsets: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StreamMessage(_message.Message):
    __slots__ = ("invocation_id", "events", "output", "closed")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    events: _containers.RepeatedCompositeFieldContainer[_records_pb2.StreamEvent]
    output: Output
    closed: bool
    def __init__(self, invocation_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_records_pb2.StreamEvent, _Mapping]]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., closed: _Optional[bool] = ...) -> None: ...

class CallRequest(_message.Message):
    __slots__ = ("target", "input", "json", "idempotency_key", "priority", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    target: _records_pb2.Target
    input: bytes
    json: _struct_pb2.Value
    idempotency_key: str
    priority: _records_pb2.Priority
    headers: _containers.ScalarMap[str, str]
    def __init__(self, target: _Optional[_Union[_records_pb2.Target, _Mapping]] = ..., input: _Optional[bytes] = ..., json: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[_Union[_records_pb2.Priority, str]] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("call", "delay_ms")
    CALL_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    call: CallRequest
    delay_ms: int
    def __init__(self, call: _Optional[_Union[CallRequest, _Mapping]] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("invocation_id", "value", "failure", "json")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    value: bytes
    failure: _records_pb2.Failure
    json: _struct_pb2.Value
    def __init__(self, invocation_id: _Optional[str] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[_records_pb2.Failure, _Mapping]] = ..., json: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class IdempotencyRef(_message.Message):
    __slots__ = ("target", "idempotency_key")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    target: _records_pb2.Target
    idempotency_key: str
    def __init__(self, target: _Optional[_Union[_records_pb2.Target, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("invocation_id", "idempotency")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    idempotency: IdempotencyRef
    def __init__(self, invocation_id: _Optional[str] = ..., idempotency: _Optional[_Union[IdempotencyRef, _Mapping]] = ...) -> None: ...

class GetOutputResponse(_message.Message):
    __slots__ = ("ready", "output", "status")
    READY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    output: Output
    status: _records_pb2.Status
    def __init__(self, ready: _Optional[bool] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., status: _Optional[_Union[_records_pb2.Status, str]] = ...) -> None: ...

class ResolveAwakeableRequest(_message.Message):
    __slots__ = ("awakeable_id", "value")
    AWAKEABLE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    awakeable_id: str
    value: bytes
    def __init__(self, awakeable_id: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class RejectAwakeableRequest(_message.Message):
    __slots__ = ("awakeable_id", "reason", "code")
    AWAKEABLE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    awakeable_id: str
    reason: str
    code: int
    def __init__(self, awakeable_id: _Optional[str] = ..., reason: _Optional[str] = ..., code: _Optional[int] = ...) -> None: ...

class ResolvePromiseRequest(_message.Message):
    __slots__ = ("workflow", "key", "name", "value", "failure")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    key: str
    name: str
    value: bytes
    failure: _records_pb2.Failure
    def __init__(self, workflow: _Optional[str] = ..., key: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[_records_pb2.Failure, _Mapping]] = ...) -> None: ...

class InvocationRequest(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RoutesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Routes(_message.Message):
    __slots__ = ("partitions", "nodes", "owners")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    partitions: int
    nodes: _containers.RepeatedCompositeFieldContainer[IngressNode]
    owners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, partitions: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[IngressNode, _Mapping]]] = ..., owners: _Optional[_Iterable[int]] = ...) -> None: ...

class IngressNode(_message.Message):
    __slots__ = ("id", "address")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: int
    address: str
    def __init__(self, id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...
