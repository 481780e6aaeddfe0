from endure.proto import records_pb2 as _records_pb2
from endure.proto import worker_pb2 as _worker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeploymentRequest(_message.Message):
    __slots__ = ("deployment",)
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    def __init__(self, deployment: _Optional[str] = ...) -> None: ...

class RemoveDeploymentRequest(_message.Message):
    __slots__ = ("deployment", "force")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    deployment: str
    force: bool
    def __init__(self, deployment: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveDeploymentResponse(_message.Message):
    __slots__ = ("removed", "moved")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _records_pb2.DeploymentRef
    moved: int
    def __init__(self, removed: _Optional[_Union[_records_pb2.DeploymentRef, _Mapping]] = ..., moved: _Optional[int] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeploymentInfo(_message.Message):
    __slots__ = ("deployment", "services", "latest_for", "draining", "registered_at_ms", "promoted_at_ms", "workers", "in_flight", "waiting")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    LATEST_FOR_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    deployment: _records_pb2.DeploymentRef
    services: _containers.RepeatedScalarFieldContainer[str]
    latest_for: _containers.RepeatedScalarFieldContainer[str]
    draining: bool
    registered_at_ms: int
    promoted_at_ms: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    in_flight: int
    waiting: int
    def __init__(self, deployment: _Optional[_Union[_records_pb2.DeploymentRef, _Mapping]] = ..., services: _Optional[_Iterable[str]] = ..., latest_for: _Optional[_Iterable[str]] = ..., draining: _Optional[bool] = ..., registered_at_ms: _Optional[int] = ..., promoted_at_ms: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., in_flight: _Optional[int] = ..., waiting: _Optional[int] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[DeploymentInfo]
    def __init__(self, deployments: _Optional[_Iterable[_Union[DeploymentInfo, _Mapping]]] = ...) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ("invocation_id", "deployment")
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    deployment: str
    def __init__(self, invocation_id: _Optional[str] = ..., deployment: _Optional[str] = ...) -> None: ...

class LimitSpec(_message.Message):
    __slots__ = ("max_running", "rate_per_s", "burst", "max_backlog", "weight")
    MAX_RUNNING_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    max_running: int
    rate_per_s: float
    burst: float
    max_backlog: int
    weight: float
    def __init__(self, max_running: _Optional[int] = ..., rate_per_s: _Optional[float] = ..., burst: _Optional[float] = ..., max_backlog: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class GetLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetLimitsRequest(_message.Message):
    __slots__ = ("tenant", "target", "limits", "clear")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    target: str
    limits: LimitSpec
    clear: bool
    def __init__(self, tenant: _Optional[str] = ..., target: _Optional[str] = ..., limits: _Optional[_Union[LimitSpec, _Mapping]] = ..., clear: _Optional[bool] = ...) -> None: ...

class LimitsResponse(_message.Message):
    __slots__ = ("tenants", "targets", "backlog", "running")
    class TenantsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LimitSpec
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LimitSpec, _Mapping]] = ...) -> None: ...
    class TargetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LimitSpec
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LimitSpec, _Mapping]] = ...) -> None: ...
    class BacklogEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class RunningEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.MessageMap[str, LimitSpec]
    targets: _containers.MessageMap[str, LimitSpec]
    backlog: _containers.ScalarMap[str, int]
    running: _containers.ScalarMap[str, int]
    def __init__(self, tenants: _Optional[_Mapping[str, LimitSpec]] = ..., targets: _Optional[_Mapping[str, LimitSpec]] = ..., backlog: _Optional[_Mapping[str, int]] = ..., running: _Optional[_Mapping[str, int]] = ...) -> None: ...

class UsageRequest(_message.Message):
    __slots__ = ("tenant", "since_ms", "by")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    since_ms: int
    by: str
    def __init__(self, tenant: _Optional[str] = ..., since_ms: _Optional[int] = ..., by: _Optional[str] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("tenant", "group", "counters")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    group: str
    counters: _containers.ScalarMap[str, float]
    def __init__(self, tenant: _Optional[str] = ..., group: _Optional[str] = ..., counters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class UsageResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "name", "deployment_id", "deployment_version", "concurrency", "active")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    deployment_id: str
    deployment_version: str
    concurrency: int
    active: int
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., deployment_id: _Optional[str] = ..., deployment_version: _Optional[str] = ..., concurrency: _Optional[int] = ..., active: _Optional[int] = ...) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("definition", "deployment_id", "deployment_version", "workers")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    definition: _worker_pb2.ServiceDef
    deployment_id: str
    deployment_version: str
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, definition: _Optional[_Union[_worker_pb2.ServiceDef, _Mapping]] = ..., deployment_id: _Optional[str] = ..., deployment_version: _Optional[str] = ..., workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceInfo]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceInfo, _Mapping]]] = ...) -> None: ...

class ListInvocationsRequest(_message.Message):
    __slots__ = ("service", "status", "key", "tenant", "created_after_ms", "created_before_ms", "page_size", "page_token", "in_flight", "deployment", "handler", "failed", "idempotency_key", "newest_first")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_MS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    service: str
    status: _records_pb2.Status
    key: str
    tenant: str
    created_after_ms: int
    created_before_ms: int
    page_size: int
    page_token: str
    in_flight: bool
    deployment: str
    handler: str
    failed: bool
    idempotency_key: str
    newest_first: bool
    def __init__(self, service: _Optional[str] = ..., status: _Optional[_Union[_records_pb2.Status, str]] = ..., key: _Optional[str] = ..., tenant: _Optional[str] = ..., created_after_ms: _Optional[int] = ..., created_before_ms: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., in_flight: _Optional[bool] = ..., deployment: _Optional[str] = ..., handler: _Optional[str] = ..., failed: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class InvocationSummary(_message.Message):
    __slots__ = ("status", "partition", "on_worker")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ON_WORKER_FIELD_NUMBER: _ClassVar[int]
    status: _records_pb2.InvocationStatus
    partition: int
    on_worker: bool
    def __init__(self, status: _Optional[_Union[_records_pb2.InvocationStatus, _Mapping]] = ..., partition: _Optional[int] = ..., on_worker: _Optional[bool] = ...) -> None: ...

class ListInvocationsResponse(_message.Message):
    __slots__ = ("invocations", "next_page_token")
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invocations: _containers.RepeatedCompositeFieldContainer[InvocationSummary]
    next_page_token: str
    def __init__(self, invocations: _Optional[_Iterable[_Union[InvocationSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class InvocationRef(_message.Message):
    __slots__ = ("invocation_id",)
    INVOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    invocation_id: str
    def __init__(self, invocation_id: _Optional[str] = ...) -> None: ...

class InvocationDescription(_message.Message):
    __slots__ = ("status", "journal", "partition", "on_worker", "waiting_for")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    ON_WORKER_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    status: _records_pb2.InvocationStatus
    journal: _containers.RepeatedCompositeFieldContainer[_records_pb2.JournalEntry]
    partition: int
    on_worker: bool
    waiting_for: str
    def __init__(self, status: _Optional[_Union[_records_pb2.InvocationStatus, _Mapping]] = ..., journal: _Optional[_Iterable[_Union[_records_pb2.JournalEntry, _Mapping]]] = ..., partition: _Optional[int] = ..., on_worker: _Optional[bool] = ..., waiting_for: _Optional[str] = ...) -> None: ...

class Done(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPartitionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Segment(_message.Message):
    __slots__ = ("base_lsn", "loglet", "sealed")
    BASE_LSN_FIELD_NUMBER: _ClassVar[int]
    LOGLET_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    base_lsn: int
    loglet: str
    sealed: bool
    def __init__(self, base_lsn: _Optional[int] = ..., loglet: _Optional[str] = ..., sealed: _Optional[bool] = ...) -> None: ...

class PartitionInfo(_message.Message):
    __slots__ = ("partition", "leader_epoch", "leader", "applied_lsn", "log_tail", "trim_point", "segments", "timers_in_memory", "node")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LEADER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    TRIM_POINT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TIMERS_IN_MEMORY_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    leader_epoch: int
    leader: bool
    applied_lsn: int
    log_tail: int
    trim_point: int
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    timers_in_memory: int
    node: str
    def __init__(self, partition: _Optional[int] = ..., leader_epoch: _Optional[int] = ..., leader: _Optional[bool] = ..., applied_lsn: _Optional[int] = ..., log_tail: _Optional[int] = ..., trim_point: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., timers_in_memory: _Optional[int] = ..., node: _Optional[str] = ...) -> None: ...

class ListPartitionsResponse(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionInfo]
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionInfo, _Mapping]]] = ...) -> None: ...
