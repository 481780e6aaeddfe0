from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_ERROR: _ClassVar[FailureCause]
    FAILURE_CANCELLED: _ClassVar[FailureCause]
    FAILURE_KILLED: _ClassVar[FailureCause]

class HandlerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HANDLER_KIND_UNSPECIFIED: _ClassVar[HandlerKind]
    SERVICE: _ClassVar[HandlerKind]
    EXCLUSIVE: _ClassVar[HandlerKind]
    SHARED: _ClassVar[HandlerKind]
    WORKFLOW_RUN: _ClassVar[HandlerKind]
    WORKFLOW_SHARED: _ClassVar[HandlerKind]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL: _ClassVar[Priority]
    HIGH: _ClassVar[Priority]
    LOW: _ClassVar[Priority]

class ChunkEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHUNK_BYTES: _ClassVar[ChunkEncoding]
    CHUNK_TEXT: _ClassVar[ChunkEncoding]
    CHUNK_JSON: _ClassVar[ChunkEncoding]

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_UNSPECIFIED: _ClassVar[Status]
    PENDING: _ClassVar[Status]
    INBOXED: _ClassVar[Status]
    SCHEDULED: _ClassVar[Status]
    RUNNING: _ClassVar[Status]
    SUSPENDED: _ClassVar[Status]
    BACKING_OFF: _ClassVar[Status]
    PAUSED: _ClassVar[Status]
    COMPLETED: _ClassVar[Status]
    KILLED: _ClassVar[Status]
    CANCELLED: _ClassVar[Status]
FAILURE_ERROR: FailureCause
FAILURE_CANCELLED: FailureCause
FAILURE_KILLED: FailureCause
HANDLER_KIND_UNSPECIFIED: HandlerKind
SERVICE: HandlerKind
EXCLUSIVE: HandlerKind
SHARED: HandlerKind
WORKFLOW_RUN: HandlerKind
WORKFLOW_SHARED: HandlerKind
NORMAL: Priority
HIGH: Priority
LOW: Priority
CHUNK_BYTES: ChunkEncoding
CHUNK_TEXT: ChunkEncoding
CHUNK_JSON: ChunkEncoding
STATUS_UNSPECIFIED: Status
PENDING: Status
INBOXED: Status
SCHEDULED: Status
RUNNING: Status
SUSPENDED: Status
BACKING_OFF: Status
PAUSED: Status
COMPLETED: Status
KILLED: Status
CANCELLED: Status

class Failure(_message.Message):
    __slots__ = ("code", "message", "cause")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    cause: FailureCause
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., cause: _Optional[_Union[FailureCause, str]] = ...) -> None: ...

class Void(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Target(_message.Message):
    __slots__ = ("service", "handler", "key")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    service: str
    handler: str
    key: str
    def __init__(self, service: _Optional[str] = ..., handler: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeploymentRef(_message.Message):
    __slots__ = ("id", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DeploymentMove(_message.Message):
    __slots__ = ("from_deployment", "to_deployment", "at_ms", "reason")
    FROM_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    TO_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_deployment: DeploymentRef
    to_deployment: DeploymentRef
    at_ms: int
    reason: str
    def __init__(self, from_deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., to_deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., at_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("invocation_id", "entry_index")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_INDEX_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    entry_index: int
    def __init__(self, invocation_id: _Optional[str] = ..., entry_index: _Optional[int] = ...) -> None: ...

class StreamChunk(_message.Message):
    __slots__ = ("stream", "data", "encoding", "seq", "step", "try_token", "close")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TRY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    stream: str
    data: bytes
    encoding: ChunkEncoding
    seq: int
    step: int
    try_token: str
    close: bool
    def __init__(self, stream: _Optional[str] = ..., data: _Optional[bytes] = ..., encoding: _Optional[_Union[ChunkEncoding, str]] = ..., seq: _Optional[int] = ..., step: _Optional[int] = ..., try_token: _Optional[str] = ..., close: _Optional[bool] = ...) -> None: ...

class StreamEvent(_message.Message):
    __slots__ = ("stream", "offset", "data", "reset", "close", "encoding", "provisional", "step", "seq")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    stream: str
    offset: int
    data: bytes
    reset: StreamReset
    close: Void
    encoding: ChunkEncoding
    provisional: bool
    step: int
    seq: int
    def __init__(self, stream: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., reset: _Optional[_Union[StreamReset, _Mapping]] = ..., close: _Optional[_Union[Void, _Mapping]] = ..., encoding: _Optional[_Union[ChunkEncoding, str]] = ..., provisional: _Optional[bool] = ..., step: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...

class StreamReset(_message.Message):
    __slots__ = ("offsets",)
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class RunEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SleepEntry(_message.Message):
    __slots__ = ("wake_at_ms",)
    WAKE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    wake_at_ms: int
    def __init__(self, wake_at_ms: _Optional[int] = ...) -> None: ...

class CallEntry(_message.Message):
    __slots__ = ("target", "input", "invocation_id", "handler_kind")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_KIND_FIELD_NUMBER: _ClassVar[int]
    target: Target
    input: bytes
    invocation_id: str
    handler_kind: HandlerKind
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., input: _Optional[bytes] = ..., invocation_id: _Optional[str] = ..., handler_kind: _Optional[_Union[HandlerKind, str]] = ...) -> None: ...

class SendEntry(_message.Message):
    __slots__ = ("target", "input", "invocation_id", "execute_at_ms", "handler_kind")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HANDLER_KIND_FIELD_NUMBER: _ClassVar[int]
    target: Target
    input: bytes
    invocation_id: str
    execute_at_ms: int
    handler_kind: HandlerKind
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., input: _Optional[bytes] = ..., invocation_id: _Optional[str] = ..., execute_at_ms: _Optional[int] = ..., handler_kind: _Optional[_Union[HandlerKind, str]] = ...) -> None: ...

class GetStateEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetStateEntry(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    def __init__(self, value: _Optional[bytes] = ...) -> None: ...

class ClearStateEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearAllStateEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStateKeysEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AwakeableEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromiseGetEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromisePeekEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PromiseCompleteEntry(_message.Message):
    __slots__ = ("value", "failure")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    failure: Failure
    def __init__(self, value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class CombinatorEntry(_message.Message):
    __slots__ = ("completed",)
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    completed: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, completed: _Optional[_Iterable[int]] = ...) -> None: ...

class OutputEntry(_message.Message):
    __slots__ = ("value", "failure")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    failure: Failure
    def __init__(self, value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class PatchEntry(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MeterEntry(_message.Message):
    __slots__ = ("counters",)
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.ScalarMap[str, float]
    def __init__(self, counters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("name", "appended_at_ms", "run", "sleep", "call", "send", "get_state", "set_state", "clear_state", "clear_all_state", "get_state_keys", "awakeable", "promise_get", "promise_peek", "promise_complete", "combinator", "output", "meter", "patch", "value", "failure", "void", "usage")
    class UsageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    APPENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    SLEEP_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    GET_STATE_FIELD_NUMBER: _ClassVar[int]
    SET_STATE_FIELD_NUMBER: _ClassVar[int]
    CLEAR_STATE_FIELD_NUMBER: _ClassVar[int]
    CLEAR_ALL_STATE_FIELD_NUMBER: _ClassVar[int]
    GET_STATE_KEYS_FIELD_NUMBER: _ClassVar[int]
    AWAKEABLE_FIELD_NUMBER: _ClassVar[int]
    PROMISE_GET_FIELD_NUMBER: _ClassVar[int]
    PROMISE_PEEK_FIELD_NUMBER: _ClassVar[int]
    PROMISE_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    COMBINATOR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    VOID_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    appended_at_ms: int
    run: RunEntry
    sleep: SleepEntry
    call: CallEntry
    send: SendEntry
    get_state: GetStateEntry
    set_state: SetStateEntry
    clear_state: ClearStateEntry
    clear_all_state: ClearAllStateEntry
    get_state_keys: GetStateKeysEntry
    awakeable: AwakeableEntry
    promise_get: PromiseGetEntry
    promise_peek: PromisePeekEntry
    promise_complete: PromiseCompleteEntry
    combinator: CombinatorEntry
    output: OutputEntry
    meter: MeterEntry
    patch: PatchEntry
    value: bytes
    failure: Failure
    void: Void
    usage: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., appended_at_ms: _Optional[int] = ..., run: _Optional[_Union[RunEntry, _Mapping]] = ..., sleep: _Optional[_Union[SleepEntry, _Mapping]] = ..., call: _Optional[_Union[CallEntry, _Mapping]] = ..., send: _Optional[_Union[SendEntry, _Mapping]] = ..., get_state: _Optional[_Union[GetStateEntry, _Mapping]] = ..., set_state: _Optional[_Union[SetStateEntry, _Mapping]] = ..., clear_state: _Optional[_Union[ClearStateEntry, _Mapping]] = ..., clear_all_state: _Optional[_Union[ClearAllStateEntry, _Mapping]] = ..., get_state_keys: _Optional[_Union[GetStateKeysEntry, _Mapping]] = ..., awakeable: _Optional[_Union[AwakeableEntry, _Mapping]] = ..., promise_get: _Optional[_Union[PromiseGetEntry, _Mapping]] = ..., promise_peek: _Optional[_Union[PromisePeekEntry, _Mapping]] = ..., promise_complete: _Optional[_Union[PromiseCompleteEntry, _Mapping]] = ..., combinator: _Optional[_Union[CombinatorEntry, _Mapping]] = ..., output: _Optional[_Union[OutputEntry, _Mapping]] = ..., meter: _Optional[_Union[MeterEntry, _Mapping]] = ..., patch: _Optional[_Union[PatchEntry, _Mapping]] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., void: _Optional[_Union[Void, _Mapping]] = ..., usage: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("leader_epoch", "producer", "sequence", "timestamp_ms")
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    leader_epoch: int
    producer: str
    sequence: int
    timestamp_ms: int
    def __init__(self, leader_epoch: _Optional[int] = ..., producer: _Optional[str] = ..., sequence: _Optional[int] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class Invoke(_message.Message):
    __slots__ = ("invocation_id", "target", "handler_kind", "input", "idempotency_key", "execute_at_ms", "caller", "tenant", "priority", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HANDLER_KIND_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    target: Target
    handler_kind: HandlerKind
    input: bytes
    idempotency_key: str
    execute_at_ms: int
    caller: Caller
    tenant: str
    priority: Priority
    headers: _containers.ScalarMap[str, str]
    def __init__(self, invocation_id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., handler_kind: _Optional[_Union[HandlerKind, str]] = ..., input: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., execute_at_ms: _Optional[int] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., tenant: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AppendEntry(_message.Message):
    __slots__ = ("invocation_id", "index", "entry", "step_try_token", "pin")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    STEP_TRY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    index: int
    entry: JournalEntry
    step_try_token: str
    pin: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., index: _Optional[int] = ..., entry: _Optional[_Union[JournalEntry, _Mapping]] = ..., step_try_token: _Optional[str] = ..., pin: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class StreamWrite(_message.Message):
    __slots__ = ("invocation_id", "chunks", "pin")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    chunks: _containers.RepeatedCompositeFieldContainer[StreamChunk]
    pin: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., chunks: _Optional[_Iterable[_Union[StreamChunk, _Mapping]]] = ..., pin: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("invocation_id", "entry_index", "value", "failure", "void")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    VOID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    entry_index: int
    value: bytes
    failure: Failure
    void: Void
    def __init__(self, invocation_id: _Optional[str] = ..., entry_index: _Optional[int] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., void: _Optional[_Union[Void, _Mapping]] = ...) -> None: ...

class End(_message.Message):
    __slots__ = ("invocation_id", "run_ms", "pin")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_MS_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    run_ms: int
    pin: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., run_ms: _Optional[int] = ..., pin: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class Suspend(_message.Message):
    __slots__ = ("invocation_id", "waiting_on", "run_ms", "pin")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_FIELD_NUMBER: _ClassVar[int]
    RUN_MS_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    waiting_on: _containers.RepeatedScalarFieldContainer[int]
    run_ms: int
    pin: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., waiting_on: _Optional[_Iterable[int]] = ..., run_ms: _Optional[int] = ..., pin: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class AttemptFailed(_message.Message):
    __slots__ = ("invocation_id", "failure", "retry_at_ms", "pause", "run_ms", "pin")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RUN_MS_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    failure: Failure
    retry_at_ms: int
    pause: bool
    run_ms: int
    pin: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., retry_at_ms: _Optional[int] = ..., pause: _Optional[bool] = ..., run_ms: _Optional[int] = ..., pin: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class TimerFired(_message.Message):
    __slots__ = ("timer_key",)
    TIMER_KEY_FIELD_NUMBER: _ClassVar[int]
    timer_key: str
    def __init__(self, timer_key: _Optional[str] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Kill(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Purge(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Pause(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("invocation_id", "deployment")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    deployment: DeploymentRef
    def __init__(self, invocation_id: _Optional[str] = ..., deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ...) -> None: ...

class MoveDeployment(_message.Message):
    __slots__ = ("invocation_id", "from_deployment", "to_deployment", "reason")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    TO_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    from_deployment: DeploymentRef
    to_deployment: DeploymentRef
    reason: str
    def __init__(self, invocation_id: _Optional[str] = ..., from_deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., to_deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ResolvePromise(_message.Message):
    __slots__ = ("workflow", "key", "name", "value", "failure", "tenant")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    key: str
    name: str
    value: bytes
    failure: Failure
    tenant: str
    def __init__(self, workflow: _Optional[str] = ..., key: _Optional[str] = ..., name: _Optional[str] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class AnnounceLeader(_message.Message):
    __slots__ = ("epoch", "node")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    node: str
    def __init__(self, epoch: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class OutboxTruncate(_message.Message):
    __slots__ = ("up_to",)
    UP_TO_FIELD_NUMBER: _ClassVar[int]
    up_to: int
    def __init__(self, up_to: _Optional[int] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("header", "invoke", "append_entry", "completion", "end", "suspend", "attempt_failed", "timer_fired", "cancel", "kill", "purge", "pause", "resume", "resolve_promise", "announce_leader", "outbox_truncate", "move_deployment", "stream_write")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    INVOKE_FIELD_NUMBER: _ClassVar[int]
    APPEND_ENTRY_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SUSPEND_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FAILED_FIELD_NUMBER: _ClassVar[int]
    TIMER_FIRED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    KILL_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_PROMISE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCE_LEADER_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    MOVE_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    STREAM_WRITE_FIELD_NUMBER: _ClassVar[int]
    header: Header
    invoke: Invoke
    append_entry: AppendEntry
    completion: Completion
    end: End
    suspend: Suspend
    attempt_failed: AttemptFailed
    timer_fired: TimerFired
    cancel: Cancel
    kill: Kill
    purge: Purge
    pause: Pause
    resume: Resume
    resolve_promise: ResolvePromise
    announce_leader: AnnounceLeader
    outbox_truncate: OutboxTruncate
    move_deployment: MoveDeployment
    stream_write: StreamWrite
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., invoke: _Optional[_Union[Invoke, _Mapping]] = ..., append_entry: _Optional[_Union[AppendEntry, _Mapping]] = ..., completion: _Optional[_Union[Completion, _Mapping]] = ..., end: _Optional[_Union[End, _Mapping]] = ..., suspend: _Optional[_Union[Suspend, _Mapping]] = ..., attempt_failed: _Optional[_Union[AttemptFailed, _Mapping]] = ..., timer_fired: _Optional[_Union[TimerFired, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., kill: _Optional[_Union[Kill, _Mapping]] = ..., purge: _Optional[_Union[Purge, _Mapping]] = ..., pause: _Optional[_Union[Pause, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., resolve_promise: _Optional[_Union[ResolvePromise, _Mapping]] = ..., announce_leader: _Optional[_Union[AnnounceLeader, _Mapping]] = ..., outbox_truncate: _Optional[_Union[OutboxTruncate, _Mapping]] = ..., move_deployment: _Optional[_Union[MoveDeployment, _Mapping]] = ..., stream_write: _Optional[_Union[StreamWrite, _Mapping]] = ...) -> None: ...

class InvocationStatus(_message.Message):
    __slots__ = ("invocation_id", "target", "handler_kind", "status", "tenant", "priority", "input", "idempotency_key", "caller", "created_at_ms", "modified_at_ms", "execute_at_ms", "attempts", "journal_length", "waiting_on", "last_failure", "value", "failure", "completed_at_ms", "retry_at_ms", "cancel_requested", "headers", "inbox_seq", "usage", "deployment", "first_deployment", "moves", "has_streams")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class UsageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HANDLER_KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_LENGTH_FIELD_NUMBER: _ClassVar[int]
    WAITING_ON_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    INBOX_SEQ_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    FIRST_DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    HAS_STREAMS_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    target: Target
    handler_kind: HandlerKind
    status: Status
    tenant: str
    priority: Priority
    input: bytes
    idempotency_key: str
    caller: Caller
    created_at_ms: int
    modified_at_ms: int
    execute_at_ms: int
    attempts: int
    journal_length: int
    waiting_on: _containers.RepeatedScalarFieldContainer[int]
    last_failure: Failure
    value: bytes
    failure: Failure
    completed_at_ms: int
    retry_at_ms: int
    cancel_requested: bool
    headers: _containers.ScalarMap[str, str]
    inbox_seq: int
    usage: _containers.ScalarMap[str, float]
    deployment: DeploymentRef
    first_deployment: DeploymentRef
    moves: _containers.RepeatedCompositeFieldContainer[DeploymentMove]
    has_streams: bool
    def __init__(self, invocation_id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., handler_kind: _Optional[_Union[HandlerKind, str]] = ..., status: _Optional[_Union[Status, str]] = ..., tenant: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., input: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., created_at_ms: _Optional[int] = ..., modified_at_ms: _Optional[int] = ..., execute_at_ms: _Optional[int] = ..., attempts: _Optional[int] = ..., journal_length: _Optional[int] = ..., waiting_on: _Optional[_Iterable[int]] = ..., last_failure: _Optional[_Union[Failure, _Mapping]] = ..., value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., completed_at_ms: _Optional[int] = ..., retry_at_ms: _Optional[int] = ..., cancel_requested: _Optional[bool] = ..., headers: _Optional[_Mapping[str, str]] = ..., inbox_seq: _Optional[int] = ..., usage: _Optional[_Mapping[str, float]] = ..., deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., first_deployment: _Optional[_Union[DeploymentRef, _Mapping]] = ..., moves: _Optional[_Iterable[_Union[DeploymentMove, _Mapping]]] = ..., has_streams: _Optional[bool] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("counters",)
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    counters: _containers.ScalarMap[str, float]
    def __init__(self, counters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Timer(_message.Message):
    __slots__ = ("wake_at_ms", "invocation_id", "complete_sleep", "start", "retry", "purge")
    WAKE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_SLEEP_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    PURGE_FIELD_NUMBER: _ClassVar[int]
    wake_at_ms: int
    invocation_id: str
    complete_sleep: int
    start: Void
    retry: Void
    purge: Void
    def __init__(self, wake_at_ms: _Optional[int] = ..., invocation_id: _Optional[str] = ..., complete_sleep: _Optional[int] = ..., start: _Optional[_Union[Void, _Mapping]] = ..., retry: _Optional[_Union[Void, _Mapping]] = ..., purge: _Optional[_Union[Void, _Mapping]] = ...) -> None: ...

class Promise(_message.Message):
    __slots__ = ("value", "failure", "waiters")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    failure: Failure
    waiters: _containers.RepeatedCompositeFieldContainer[Caller]
    def __init__(self, value: _Optional[bytes] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ..., waiters: _Optional[_Iterable[_Union[Caller, _Mapping]]] = ...) -> None: ...

class StreamState(_message.Message):
    __slots__ = ("next_offset", "handler_writes", "open", "closed")
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    HANDLER_WRITES_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    next_offset: int
    handler_writes: int
    open: _containers.RepeatedCompositeFieldContainer[OpenStep]
    closed: bool
    def __init__(self, next_offset: _Optional[int] = ..., handler_writes: _Optional[int] = ..., open: _Optional[_Iterable[_Union[OpenStep, _Mapping]]] = ..., closed: _Optional[bool] = ...) -> None: ...

class OpenStep(_message.Message):
    __slots__ = ("step", "try_token", "offsets")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TRY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    step: int
    try_token: str
    offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, step: _Optional[int] = ..., try_token: _Optional[str] = ..., offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class StreamTotals(_message.Message):
    __slots__ = ("events", "bytes", "last_seq")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    events: int
    bytes: int
    last_seq: int
    def __init__(self, events: _Optional[int] = ..., bytes: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...

class OutboxMessage(_message.Message):
    __slots__ = ("sequence", "partition", "envelope")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    partition: int
    envelope: Envelope
    def __init__(self, sequence: _Optional[int] = ..., partition: _Optional[int] = ..., envelope: _Optional[_Union[Envelope, _Mapping]] = ...) -> None: ...
