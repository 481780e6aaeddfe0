"""What both sides of the internal partition service share: names, bounds, typed errors, conversions."""

from __future__ import annotations

from endure.proto import partition_pb2 as ppb
from endure.runtime.partition.api import (
    InvocationFilter,
    PartitionInfo,
    SegmentInfo,
)

SERVICE_NAME = ppb.DESCRIPTOR.services_by_name["PartitionService"].full_name
MAX_APPEND = 1000  # envelopes in one Append: bounds the request and the time the log is held by one writer
MAX_SCAN = 1000  # statuses in one ScanInvocations page
PENDING_KEY = "endure-log-pending"  # LogFull's figures travel as trailing metadata
LIMIT_KEY = "endure-log-limit"



# ---------------------------------------------------------------------------------------- errors


class PartitionError(Exception):
    """A remote partition call failed for a reason none of the narrower types names."""

    def __init__(self, partition: int, message: str) -> None:
        self.partition = partition
        super().__init__(message)


class PartitionNotOwned(PartitionError):
    """The node asked does not own the partition (FAILED_PRECONDITION): the placement moved or is wrong."""


class PartitionUnavailable(PartitionError):
    """The owner could not be reached or did not answer in time; the call may be retried."""


class InvalidPartitionRequest(PartitionError, ValueError):
    """The request was refused as malformed (INVALID_ARGUMENT); retrying it unchanged cannot help."""


# ---------------------------------------------------------------------------------------- conversions


def filter_fields(flt: InvocationFilter) -> dict[str, object]:
    return {"service": flt.service, "status": flt.status, "key": flt.key, "tenant": flt.tenant,
            "created_after_ms": flt.created_after_ms, "created_before_ms": flt.created_before_ms,
            "in_flight": flt.in_flight, "deployment": flt.deployment, "handler": flt.handler,
            "failed": flt.failed, "idempotency_key": flt.idempotency_key}


def filter_of(request: ppb.ScanRequest) -> InvocationFilter:
    return InvocationFilter(service=request.service, status=request.status, key=request.key,
                            tenant=request.tenant, created_after_ms=request.created_after_ms,
                            created_before_ms=request.created_before_ms, in_flight=request.in_flight,
                            deployment=request.deployment, handler=request.handler, failed=request.failed,
                            idempotency_key=request.idempotency_key)


def info_message(info: PartitionInfo) -> ppb.InfoResponse:
    return ppb.InfoResponse(
        partition=info.partition, leader=info.leader, leader_epoch=info.leader_epoch,
        applied_lsn=info.applied_lsn, log_tail=info.log_tail, trim_point=info.trim_point,
        timers_in_memory=info.timers_in_memory, node=info.node,
        segments=[ppb.SegmentInfo(base_lsn=s.base_lsn, loglet=s.loglet, sealed=s.sealed) for s in info.segments])


def info_of(msg: ppb.InfoResponse) -> PartitionInfo:
    return PartitionInfo(
        partition=msg.partition, leader=msg.leader, leader_epoch=msg.leader_epoch, applied_lsn=msg.applied_lsn,
        log_tail=msg.log_tail, trim_point=msg.trim_point, timers_in_memory=msg.timers_in_memory,
        segments=tuple(SegmentInfo(s.base_lsn, s.loglet, s.sealed) for s in msg.segments), node=msg.node)


