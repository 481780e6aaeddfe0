from endure.proto import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_KIND_UNSPECIFIED: _ClassVar[ServiceKind]
    SERVICE: _ClassVar[ServiceKind]
    VIRTUAL_OBJECT: _ClassVar[ServiceKind]
    WORKFLOW: _ClassVar[ServiceKind]
SERVICE_KIND_UNSPECIFIED: ServiceKind
SERVICE: ServiceKind
VIRTUAL_OBJECT: ServiceKind
WORKFLOW: ServiceKind

class RetryPolicy(_message.Message):
    __slots__ = ("initial_interval_ms", "factor", "max_interval_ms", "max_attempts", "max_duration_ms", "pause_on_exhaustion")
    INITIAL_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_ON_EXHAUSTION_FIELD_NUMBER: _ClassVar[int]
    initial_interval_ms: int
    factor: float
    max_interval_ms: int
    max_attempts: int
    max_duration_ms: int
    pause_on_exhaustion: bool
    def __init__(self, initial_interval_ms: _Optional[int] = ..., factor: _Optional[float] = ..., max_interval_ms: _Optional[int] = ..., max_attempts: _Optional[int] = ..., max_duration_ms: _Optional[int] = ..., pause_on_exhaustion: _Optional[bool] = ...) -> None: ...

class HandlerDef(_message.Message):
    __slots__ = ("name", "kind", "input_schema_json", "output_schema_json", "retry", "inactivity_timeout_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    INACTIVITY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _records_pb2.HandlerKind
    input_schema_json: str
    output_schema_json: str
    retry: RetryPolicy
    inactivity_timeout_ms: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_records_pb2.HandlerKind, str]] = ..., input_schema_json: _Optional[str] = ..., output_schema_json: _Optional[str] = ..., retry: _Optional[_Union[RetryPolicy, _Mapping]] = ..., inactivity_timeout_ms: _Optional[int] = ...) -> None: ...

class ServiceDef(_message.Message):
    __slots__ = ("name", "kind", "handlers")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ServiceKind
    handlers: _containers.RepeatedCompositeFieldContainer[HandlerDef]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ServiceKind, str]] = ..., handlers: _Optional[_Iterable[_Union[HandlerDef, _Mapping]]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("deployment_id", "deployment_version", "concurrency", "services", "worker_name")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    deployment_version: str
    concurrency: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceDef]
    worker_name: str
    def __init__(self, deployment_id: _Optional[str] = ..., deployment_version: _Optional[str] = ..., concurrency: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceDef, _Mapping]]] = ..., worker_name: _Optional[str] = ...) -> None: ...

class StoredDeployment(_message.Message):
    __slots__ = ("register", "order", "draining", "registered_at_ms", "promoted_at_ms")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    order: int
    draining: bool
    registered_at_ms: int
    promoted_at_ms: int
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., order: _Optional[int] = ..., draining: _Optional[bool] = ..., registered_at_ms: _Optional[int] = ..., promoted_at_ms: _Optional[int] = ...) -> None: ...

class EntryFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "index", "entry", "step_try_token")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    STEP_TRY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    index: int
    entry: _records_pb2.JournalEntry
    step_try_token: str
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., index: _Optional[int] = ..., entry: _Optional[_Union[_records_pb2.JournalEntry, _Mapping]] = ..., step_try_token: _Optional[str] = ...) -> None: ...

class SuspendFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "waiting_on")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    waiting_on: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., waiting_on: _Optional[_Iterable[int]] = ...) -> None: ...

class EndFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class FailFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "failure", "journal_mismatch")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    failure: _records_pb2.Failure
    journal_mismatch: bool
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., failure: _Optional[_Union[_records_pb2.Failure, _Mapping]] = ..., journal_mismatch: _Optional[bool] = ...) -> None: ...

class DrainFrame(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReleaseFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "reason")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    reason: str
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class StreamFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "chunks")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    chunks: _containers.RepeatedCompositeFieldContainer[_records_pb2.StreamChunk]
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., chunks: _Optional[_Iterable[_Union[_records_pb2.StreamChunk, _Mapping]]] = ...) -> None: ...

class WorkerFrame(_message.Message):
    __slots__ = ("register", "entry", "suspend", "end", "fail", "drain", "release", "stream")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    register: Register
    entry: EntryFrame
    suspend: SuspendFrame
    end: EndFrame
    fail: FailFrame
    drain: DrainFrame
    release: ReleaseFrame
    stream: StreamFrame
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., entry: _Optional[_Union[EntryFrame, _Mapping]] = ..., suspend: _Optional[_Union[SuspendFrame, _Mapping]] = ..., end: _Optional[_Union[EndFrame, _Mapping]] = ..., fail: _Optional[_Union[FailFrame, _Mapping]] = ..., drain: _Optional[_Union[DrainFrame, _Mapping]] = ..., release: _Optional[_Union[ReleaseFrame, _Mapping]] = ..., stream: _Optional[_Union[StreamFrame, _Mapping]] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[WorkerFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[WorkerFrame, _Mapping]]] = ...) -> None: ...

class StateEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class StartFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "target", "handler_kind", "input", "journal", "state", "state_complete", "tenant", "cancelled", "headers", "stream_writes", "stream_limits", "stream_bytes", "stream_events", "sandbox_network")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class StreamWritesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HANDLER_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    STREAM_WRITES_FIELD_NUMBER: _ClassVar[int]
    STREAM_LIMITS_FIELD_NUMBER: _ClassVar[int]
    STREAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    STREAM_EVENTS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_NETWORK_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    target: _records_pb2.Target
    handler_kind: _records_pb2.HandlerKind
    input: bytes
    journal: _containers.RepeatedCompositeFieldContainer[_records_pb2.JournalEntry]
    state: _containers.RepeatedCompositeFieldContainer[StateEntry]
    state_complete: bool
    tenant: str
    cancelled: bool
    headers: _containers.ScalarMap[str, str]
    stream_writes: _containers.ScalarMap[str, int]
    stream_limits: StreamLimits
    stream_bytes: int
    stream_events: int
    sandbox_network: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., target: _Optional[_Union[_records_pb2.Target, _Mapping]] = ..., handler_kind: _Optional[_Union[_records_pb2.HandlerKind, str]] = ..., input: _Optional[bytes] = ..., journal: _Optional[_Iterable[_Union[_records_pb2.JournalEntry, _Mapping]]] = ..., state: _Optional[_Iterable[_Union[StateEntry, _Mapping]]] = ..., state_complete: _Optional[bool] = ..., tenant: _Optional[str] = ..., cancelled: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., stream_writes: _Optional[_Mapping[str, int]] = ..., stream_limits: _Optional[_Union[StreamLimits, _Mapping]] = ..., stream_bytes: _Optional[int] = ..., stream_events: _Optional[int] = ..., sandbox_network: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamLimits(_message.Message):
    __slots__ = ("max_chunk_bytes", "max_bytes", "max_events", "max_chunks_per_s")
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNKS_PER_S_FIELD_NUMBER: _ClassVar[int]
    max_chunk_bytes: int
    max_bytes: int
    max_events: int
    max_chunks_per_s: int
    def __init__(self, max_chunk_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ..., max_events: _Optional[int] = ..., max_chunks_per_s: _Optional[int] = ...) -> None: ...

class AckFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "index")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    index: int
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class CompleteFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "index", "value", "failure", "void")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    VOID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    index: int
    value: bytes
    failure: _records_pb2.Failure
    void: _records_pb2.Void
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., index: _Optional[int] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[_records_pb2.Failure, _Mapping]] = ..., void: _Optional[_Union[_records_pb2.Void, _Mapping]] = ...) -> None: ...

class CancelFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class AbortFrame(_message.Message):
    __slots__ = ("invocation_id", "attempt", "reason")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    attempt: int
    reason: str
    def __init__(self, invocation_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RegisteredFrame(_message.Message):
    __slots__ = ("worker_id", "peers")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    peers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., peers: _Optional[_Iterable[str]] = ...) -> None: ...

class DrainedFrame(_message.Message):
    __slots__ = ("running",)
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    running: int
    def __init__(self, running: _Optional[int] = ...) -> None: ...

class RuntimeFrame(_message.Message):
    __slots__ = ("registered", "start", "ack", "complete", "cancel", "abort", "drained", "peers")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    registered: RegisteredFrame
    start: StartFrame
    ack: AckFrame
    complete: CompleteFrame
    cancel: CancelFrame
    abort: AbortFrame
    drained: DrainedFrame
    peers: PeersFrame
    def __init__(self, registered: _Optional[_Union[RegisteredFrame, _Mapping]] = ..., start: _Optional[_Union[StartFrame, _Mapping]] = ..., ack: _Optional[_Union[AckFrame, _Mapping]] = ..., complete: _Optional[_Union[CompleteFrame, _Mapping]] = ..., cancel: _Optional[_Union[CancelFrame, _Mapping]] = ..., abort: _Optional[_Union[AbortFrame, _Mapping]] = ..., drained: _Optional[_Union[DrainedFrame, _Mapping]] = ..., peers: _Optional[_Union[PeersFrame, _Mapping]] = ...) -> None: ...

class PeersFrame(_message.Message):
    __slots__ = ("peers",)
    PEERS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peers: _Optional[_Iterable[str]] = ...) -> None: ...

class RuntimeMessage(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[RuntimeFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[RuntimeFrame, _Mapping]]] = ...) -> None: ...
