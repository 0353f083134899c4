"""Request and response bodies of the HTTP API, all on one documented msgspec base."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from domain.co2e import Gwp
from domain.receipts import Conflict, IngestReceipt
from domain.roles import Role
from service.devices import DeviceKey
from service.infra.db import MAX_ID
from service.outbox import QueueStats
from service.sites import SiteView

__all__ = ["Conflict", "IngestReceipt"]


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every API body: keyword-only fields, and an unknown field is an error, not ignored."""


DeviceId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="The sending device; letters, digits and . _ : -",
    ),
]
WindowStart = Annotated[
    datetime,
    Meta(tz=True, description="Start of the measurement window, RFC 3339 with an explicit offset"),
]
MethaneKg = Annotated[float, Meta(ge=0, description="kg CH4 emitted in the window (finite)")]
RowId = Annotated[int, Meta(ge=1, le=MAX_ID, description="A row id (positive, at most 2**53 - 1)")]
SiteName = Annotated[str, Meta(min_length=1, max_length=200)]
LimitKg = Annotated[float, Meta(gt=0, le=1e15, description="Annual emission limit, kg CH4")]
Metadata = Annotated[dict[str, Any], Meta(description="Free-form site attributes")]


class MeasurementIn(Base, gc=False):
    # gc=False: a datetime and a float cannot form a cycle; 500 per request stay out of the
    # collector's young generation.
    ts: WindowStart
    methane_kg: MethaneKg


class IngestBatch(Base):
    measurements: list[MeasurementIn]
    # Optional: the device key says which device is sending; if given, it must match.
    device_id: DeviceId | None = None


ReportingInterval = Annotated[
    int, Meta(ge=1, le=86400, description="Length of one measurement window, seconds")
]


class SiteCreate(Base):
    name: SiteName
    emission_limit_kg: LimitKg
    metadata: Metadata = msgspec.field(default_factory=dict)
    reporting_interval_s: ReportingInterval = 900


class SitePatch(Base):
    """Fields left out keep their value; metadata is replaced as a whole."""

    name: SiteName | UnsetType = UNSET
    emission_limit_kg: LimitKg | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    reporting_interval_s: ReportingInterval | UnsetType = UNSET


SiteOut = SiteView


class SitePage(Base):
    items: list[SiteOut]
    # Pass as ?after= to get the next page; null on the last page.
    next_after: int | None = None


class FieldProblem(Base):
    pointer: str
    detail: str


class Problem(Base):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def inline_schema(tp: Any) -> dict[str, Any]:
    """JSON Schema of tp with every $ref resolved in place (for hand-documented bodies)."""
    (root,), defs = msgspec.json.schema_components([tp])

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(root)
    return resolved


class HourOut(Base):
    hour: datetime
    total_kg: float
    readings: int
    t_co2e: float


class HourlySeries(Base):
    site_id: int
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    hours: list[HourOut]
    gwp: Gwp
    # True when the range asked for was longer than 400 days and `to` is where this answer ends.
    truncated: bool = False


class QueueOut(QueueStats, kw_only=True):
    table_bytes: dict[str, int]


class OutboxEventOut(Base):
    id: int
    event_type: str
    site_id: int
    payload: dict[str, Any]
    created_at: datetime
    available_at: datetime
    attempts: int
    last_error: str | None
    processed_at: datetime | None
    dead_at: datetime | None


class OutboxPage(Base):
    items: list[OutboxEventOut]
    # Pass as ?before= for the next (older) page; null on the last page.
    next_before: int | None = None


OutboxEventType = Literal[
    "measurements.accepted",
    "site.threshold_crossed",
    "site.leak_detected",
    "site.stale",
    "report.restated",
]


class ReplayRequest(Base):
    """Exactly one of: event_ids; site_id (optionally with from/to, the data's time range);
    all_dead (optionally with site_id, event_type and created_from/created_to, the events'
    creation time, as GET /v1/ops/outbox filters them). dry_run answers what would be
    replayed, changing nothing."""

    event_ids: Annotated[list[int], Meta(min_length=1, max_length=10_000)] | None = None
    site_id: RowId | None = None
    start: datetime | None = msgspec.field(default=None, name="from")
    end: datetime | None = msgspec.field(default=None, name="to")
    all_dead: bool = False
    dry_run: bool = False
    event_type: OutboxEventType | None = None
    created_from: Annotated[datetime, Meta(tz=True)] | None = None
    created_to: Annotated[datetime, Meta(tz=True)] | None = None


_ABSENT = {"type": "null"}  # in a oneOf mode: the member is left out (or null)
# ReplaySelection.check as schema, so a client (or a generator) knows the modes exclude each
# other: a site_id with all_dead filters the dead events, it is not a second mode.
REPLAY_MODES = [
    {
        "title": "By event ids",
        "required": ["event_ids"],
        "properties": {
            "event_ids": {"type": "array"},
            "site_id": _ABSENT,
            "from": _ABSENT,
            "to": _ABSENT,
            "all_dead": {"const": False},
            "event_type": _ABSENT,
            "created_from": _ABSENT,
            "created_to": _ABSENT,
        },
    },
    {
        "title": "By site, optionally in [from, to)",
        "required": ["site_id"],
        "properties": {
            "site_id": {"type": "integer"},
            "event_ids": _ABSENT,
            "all_dead": {"const": False},
            "event_type": _ABSENT,
            "created_from": _ABSENT,
            "created_to": _ABSENT,
        },
    },
    {
        "title": "Every dead event, optionally of one site and type, created in a range",
        "required": ["all_dead"],
        "properties": {
            "all_dead": {"const": True},
            "event_ids": _ABSENT,
            "from": _ABSENT,
            "to": _ABSENT,
        },
    },
]
REPLAY_EXAMPLES = {
    "by_ids": {"event_ids": [41, 42]},
    "by_site": {
        "site_id": 7,
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-02-01T00:00:00Z",
        "dry_run": True,
    },
    "dead_of_a_site": {"all_dead": True, "site_id": 7},
    "dead_matching_a_filter": {
        "all_dead": True,
        "site_id": 7,
        "event_type": "measurements.accepted",
        "created_from": "2026-01-01T00:00:00Z",
        "created_to": "2026-01-02T00:00:00Z",
        "dry_run": True,
    },
}


class AuditOut(Base):
    id: int
    at: datetime
    actor: str  # the token's name (or `cli`)
    role: Role  # the token's role when it acted
    action: str
    affected: int
    dry_run: bool


class AuditRecord(AuditOut):
    params: dict[str, Any]  # what the action was given (ids, selections), never a secret


class AuditPage(Base):
    items: list[AuditRecord]
    # Pass as ?before= for the next (older) page; null on the last page.
    next_before: int | None = None


class Me(Base):
    """Who a token names; viewer < operator < admin, each may do what those below may."""

    name: str
    role: Role


class ReplayOut(Base):
    event_ids: list[int]
    replayed: int
    dry_run: bool
    audit: AuditOut


class DeviceCreate(Base):
    device_id: DeviceId
    site_ids: Annotated[list[Annotated[int, Meta(ge=1, le=MAX_ID)]], Meta(min_length=1)]
    name: Annotated[str, Meta(max_length=200)] | None = None


class DeviceKeyCreated(Base):
    """The secret appears here once; only its hash is stored."""

    key: str
    device: DeviceKey


class AlertOut(Base):
    id: int
    site_id: int
    kind: str
    dedupe_key: str
    details: dict[str, Any]
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertCounts(Base):
    open: int
    acknowledged: int


class AlertPage(Base):
    items: list[AlertOut]
    next_before: int | None = None
    counts: AlertCounts | None = None  # of every alert (of the site, if one is given)


class QueuePointOut(Base):
    """One bucket of queue history: gauges at their highest in it, counters summed."""

    at: datetime  # the bucket's start
    samples: int  # samples in the bucket (fewer than step / sample interval: a gap)
    covered_s: int  # seconds the samples' counters cover: rate = processed / covered_s
    pending: int
    backoff: int
    dead: int
    oldest_pending_s: float
    processed: int
    failed: int
    deliveries_sent: int
    deliveries_failed: int
    deliveries_dead: int


class QueueHistoryOut(Base):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    step_s: int
    sample_s: int  # how often the workers sample (QUEUE_SAMPLE_S)
    points: list[QueuePointOut]  # buckets without samples are left out
    # True when the range asked for was cut (to at most 1500 points, or 400 days): `to` is
    # where this answer ends.
    truncated: bool = False


class WorkerOut(Base):
    worker_id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime  # last heartbeat
    heartbeat_age_s: float
    alive: bool  # beat within stale_after_s
    drained: int  # events this worker process applied
    claim: str | None  # what it is working on now, e.g. "drain (sweep)"; null: idle
    claim_since: datetime | None


class WorkersOut(Base):
    items: list[WorkerOut]
    stale_after_s: int
    # More workers beat in the last 24 hours than `limit`: the least recently seen are left out.
    truncated: bool = False


class OutboxErrorOut(Base):
    attempt: int  # 1-based; a replay starts the count again
    at: datetime
    worker: str  # the worker id (host:pid:suffix) that tried
    error: str


class OutboxAuditOut(AuditRecord):
    # 'ids': the replay named this event; 'filter': its filter (site, type, creation time)
    # admits the event and came after it, so it may have selected it.
    matched_by: Literal["ids", "filter"]


class OutboxEventDetail(OutboxEventOut):
    """One event for triage: the raw payload, every recorded failure (the last 20, oldest
    first) and the replays that concern it (newest first, at most 100)."""

    errors: list[OutboxErrorOut]
    audit: list[OutboxAuditOut]
