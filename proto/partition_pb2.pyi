from endure.proto import records_pb2 as _records_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AppendRequest(_message.Message):
    __slots__ = ("partition", "envelopes", "wait")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    partition: int
    envelopes: _containers.RepeatedCompositeFieldContainer[_records_pb2.Envelope]
    wait: bool
    def __init__(self, partition: _Optional[int] = ..., envelopes: _Optional[_Iterable[_Union[_records_pb2.Envelope, _Mapping]]] = ..., wait: _Optional[bool] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("first_lsn", "last_lsn")
    FIRST_LSN_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    first_lsn: int
    last_lsn: int
    def __init__(self, first_lsn: _Optional[int] = ..., last_lsn: _Optional[int] = ...) -> None: ...

class InvocationRequest(_message.Message):
    __slots__ = ("partition", "invocation_id", "start", "limit")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    partition: int
    invocation_id: str
    start: int
    limit: int
    def __init__(self, partition: _Optional[int] = ..., invocation_id: _Optional[str] = ..., start: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class AwaitCompletionRequest(_message.Message):
    __slots__ = ("partition", "invocation_id", "applied_lsn")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    partition: int
    invocation_id: str
    applied_lsn: int
    def __init__(self, partition: _Optional[int] = ..., invocation_id: _Optional[str] = ..., applied_lsn: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("found", "status")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    status: _records_pb2.InvocationStatus
    def __init__(self, found: _Optional[bool] = ..., status: _Optional[_Union[_records_pb2.InvocationStatus, _Mapping]] = ...) -> None: ...

class JournalResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_records_pb2.JournalEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[_records_pb2.JournalEntry, _Mapping]]] = ...) -> None: ...

class ObjectRequest(_message.Message):
    __slots__ = ("partition", "tenant", "service", "key")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    partition: int
    tenant: str
    service: str
    key: str
    def __init__(self, partition: _Optional[int] = ..., tenant: _Optional[str] = ..., service: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class StateEntry(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: bytes
    def __init__(self, name: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class ObjectStateResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[StateEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[StateEntry, _Mapping]]] = ...) -> None: ...

class ObjectKeysRequest(_message.Message):
    __slots__ = ("partition", "tenant", "service", "after", "limit", "promises")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PROMISES_FIELD_NUMBER: _ClassVar[int]
    partition: int
    tenant: str
    service: str
    after: str
    limit: int
    promises: bool
    def __init__(self, partition: _Optional[int] = ..., tenant: _Optional[str] = ..., service: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., promises: _Optional[bool] = ...) -> None: ...

class ObjectKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class NamedPromise(_message.Message):
    __slots__ = ("name", "promise")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROMISE_FIELD_NUMBER: _ClassVar[int]
    name: str
    promise: _records_pb2.Promise
    def __init__(self, name: _Optional[str] = ..., promise: _Optional[_Union[_records_pb2.Promise, _Mapping]] = ...) -> None: ...

class PromisesResponse(_message.Message):
    __slots__ = ("promises",)
    PROMISES_FIELD_NUMBER: _ClassVar[int]
    promises: _containers.RepeatedCompositeFieldContainer[NamedPromise]
    def __init__(self, promises: _Optional[_Iterable[_Union[NamedPromise, _Mapping]]] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("partition", "service", "status", "key", "tenant", "created_after_ms", "created_before_ms", "after", "limit", "in_flight", "deployment", "handler", "failed", "idempotency_key", "newest_first", "before_ms")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    partition: int
    service: str
    status: _records_pb2.Status
    key: str
    tenant: str
    created_after_ms: int
    created_before_ms: int
    after: str
    limit: int
    in_flight: bool
    deployment: str
    handler: str
    failed: bool
    idempotency_key: str
    newest_first: bool
    before_ms: int
    def __init__(self, partition: _Optional[int] = ..., service: _Optional[str] = ..., status: _Optional[_Union[_records_pb2.Status, str]] = ..., key: _Optional[str] = ..., tenant: _Optional[str] = ..., created_after_ms: _Optional[int] = ..., created_before_ms: _Optional[int] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., in_flight: _Optional[bool] = ..., deployment: _Optional[str] = ..., handler: _Optional[str] = ..., failed: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., newest_first: _Optional[bool] = ..., before_ms: _Optional[int] = ...) -> None: ...

class PinnedCountsResponse(_message.Message):
    __slots__ = ("counts",)
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ScanResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[_records_pb2.InvocationStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[_records_pb2.InvocationStatus, _Mapping]]] = ...) -> None: ...

class UsageRequest(_message.Message):
    __slots__ = ("partition", "tenant", "since_day")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SINCE_DAY_FIELD_NUMBER: _ClassVar[int]
    partition: int
    tenant: str
    since_day: int
    def __init__(self, partition: _Optional[int] = ..., tenant: _Optional[str] = ..., since_day: _Optional[int] = ...) -> None: ...

class UsageRecord(_message.Message):
    __slots__ = ("tenant", "day", "service", "handler", "counters")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    day: int
    service: str
    handler: str
    counters: _containers.ScalarMap[str, float]
    def __init__(self, tenant: _Optional[str] = ..., day: _Optional[int] = ..., service: _Optional[str] = ..., handler: _Optional[str] = ..., counters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class UsageResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRecord]
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRecord, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("partition",)
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    partition: int
    def __init__(self, partition: _Optional[int] = ...) -> None: ...

class SegmentInfo(_message.Message):
    __slots__ = ("base_lsn", "loglet", "sealed")
    BASE_LSN_FIELD_NUMBER: _ClassVar[int]
    LOGLET_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    base_lsn: int
    loglet: str
    sealed: bool
    def __init__(self, base_lsn: _Optional[int] = ..., loglet: _Optional[str] = ..., sealed: _Optional[bool] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("partition", "leader", "leader_epoch", "applied_lsn", "log_tail", "trim_point", "timers_in_memory", "segments", "node")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    TRIM_POINT_FIELD_NUMBER: _ClassVar[int]
    TIMERS_IN_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    leader: bool
    leader_epoch: int
    applied_lsn: int
    log_tail: int
    trim_point: int
    timers_in_memory: int
    segments: _containers.RepeatedCompositeFieldContainer[SegmentInfo]
    node: str
    def __init__(self, partition: _Optional[int] = ..., leader: _Optional[bool] = ..., leader_epoch: _Optional[int] = ..., applied_lsn: _Optional[int] = ..., log_tail: _Optional[int] = ..., trim_point: _Optional[int] = ..., timers_in_memory: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[SegmentInfo, _Mapping]]] = ..., node: _Optional[str] = ...) -> None: ...

class ReadStreamRequest(_message.Message):
    __slots__ = ("partition", "invocation_id", "after_seq", "limit", "wait_ms")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    partition: int
    invocation_id: str
    after_seq: int
    limit: int
    wait_ms: int
    def __init__(self, partition: _Optional[int] = ..., invocation_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., limit: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ReadStreamResponse(_message.Message):
    __slots__ = ("events", "found", "finished")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_records_pb2.StreamEvent]
    found: bool
    finished: bool
    def __init__(self, events: _Optional[_Iterable[_Union[_records_pb2.StreamEvent, _Mapping]]] = ..., found: _Optional[bool] = ..., finished: _Optional[bool] = ...) -> None: ...
