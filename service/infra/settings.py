"""All configuration, read once from environment variables into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
from msgspec import Meta

from domain.co2e import Gwp, GwpVersion, gwp
from domain.egress import LOOPBACK, Networks, parse_networks
from domain.readings import BatchLimits
from domain.roles import Actor, parse_token_entries

DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - public on purpose: development only
MIN_PRODUCTION_TOKEN_CHARS = 32
PositiveInt = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
AwareDatetime = Annotated[datetime, Meta(tz=True)]


def host_list(dsn: str) -> list[str]:
    """The hosts a PostgreSQL URL names ("h1:5432,h2:5432" is two)."""
    hosts = urlsplit(dsn).netloc.rpartition("@")[2]
    return [h for h in hosts.split(",") if h]


def target_session_attrs(dsn: str) -> str:
    """The URL's target_session_attrs (asyncpg's default: any)."""
    values = parse_qs(urlsplit(dsn).query).get("target_session_attrs")
    return values[-1] if values else os.environ.get("PGTARGETSESSIONATTRS", "any")


class UnsafeSettings(ValueError):
    """Production settings that would expose the engine (development secrets)."""


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every setting, with its development default. Env var = field name in upper case."""

    environment: Literal["development", "production"] = "development"
    # One host, or every host of the cluster in order with target_session_attrs=read-write
    # ("postgresql://u@db1:5432,db2:5432/emissions?target_session_attrs=read-write"): every
    # connection goes to whichever host is the primary now, so a failover needs no restart.
    database_url: str = "postgresql://postgres@127.0.0.1:5432/emissions"
    # Optional: where reads that tolerate lag go (dashboard, site totals and series, reports,
    # queue views), e.g. the standbys with target_session_attrs=prefer-standby. Unset: the
    # primary. Responses read there carry Replica-Lag; an unreachable replica falls back to
    # the primary.
    read_database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    db_pool_min: PositiveInt = 2
    db_pool_max: PositiveInt = 10
    db_command_timeout_s: PositiveFloat = 10.0
    # Per host of DATABASE_URL / READ_DATABASE_URL, for every new connection (pool and CLI):
    # a host that drops packets passes to the next one after this, not after asyncpg's 60 s.
    db_connect_timeout_s: PositiveFloat = 5.0
    host: str = "127.0.0.1"
    # Host headers the API answers ("api.example.com,*.example.com"); others get 400.
    allowed_hosts: str = "*"
    port: PositiveInt = 8000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool | None = None  # None: JSON unless stdout is a terminal
    max_body_bytes: PositiveInt = 1024 * 1024
    # Ingress a slow or hostile client cannot hold: headers must be complete, and a body
    # fully read, within these; idle keep-alive connections close; header count and size.
    header_timeout_s: PositiveFloat = 5.0
    body_read_timeout_s: PositiveFloat = 5.0
    keep_alive_s: PositiveInt = 5
    max_headers: PositiveInt = 64
    max_header_bytes: PositiveInt = 16 * 1024
    # Requests one device key may have in flight at once (beyond: 429 + Retry-After).
    device_max_in_flight: PositiveInt = 4
    # Unknown bearer tokens per client address: this many per second, bursts up to the burst;
    # beyond it 429 before any lookup. Unknown tokens are remembered for a minute.
    auth_failures_per_s: PositiveFloat = 1.0
    auth_failure_burst: PositiveFloat = 20.0
    ready_cache_s: NonNegativeFloat = 1.0  # /ready answers from a cache this old at most
    # Requests being handled at once per API process; more get 503 + Retry-After at once
    # instead of queueing (memory and latency stay bounded under overload).
    max_in_flight: PositiveInt = 128
    max_readings_per_batch: PositiveInt = 5000
    max_methane_kg: PositiveFloat = 1e6
    max_future_s: PositiveInt = 300
    earliest_reading: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)
    idempotency_retention_h: PositiveInt = 7 * 24
    drain_batch_size: PositiveInt = 1000
    drain_budget_s: PositiveFloat = 5.0
    drain_max_attempts: PositiveInt = 10
    drain_backoff_base_s: PositiveFloat = 1.0
    drain_backoff_cap_s: PositiveFloat = 300.0
    sweep_interval_s: PositiveInt = 1
    worker_max_jobs: PositiveInt = 4
    worker_poll_delay_s: PositiveFloat = 0.05
    nudge_timeout_s: PositiveFloat = 0.25
    outbox_retention_days: PositiveInt = 7
    # The queue page's history: one sample per this many seconds (whichever worker is first),
    # kept this many days (the maintenance job deletes older samples and gone workers).
    queue_sample_s: PositiveInt = 10
    queue_history_days: PositiveInt = 14
    # Named operator tokens, "name:token,name:role:token" (role viewer, operator or admin; without
    # one, admin). The development default is public.
    admin_tokens: str = f"dev:{DEV_ADMIN_TOKEN}"
    worker_metrics_port: int = 0  # > 0: the worker serves Prometheus metrics on this port
    device_rate_per_s: PositiveFloat = 20.0
    device_burst: PositiveFloat = 40.0
    request_timeout_s: PositiveFloat = 10.0
    # Ingest's fast lane (service/ingest.py, FastLane): batches of up to ingest_lane_max_readings
    # readings; at most ingest_statements of their statements at once per API process; while
    # all are busy, waiting requests share the next one (one commit for several), up to
    # ingest_group_readings readings. Larger batches run their own statement at once.
    ingest_lane_max_readings: PositiveInt = 100
    ingest_statements: PositiveInt = 2
    ingest_group_readings: PositiveInt = 2000
    gwp_version: GwpVersion = "AR6-fossil"  # methane GWP100 for every CO2e figure
    leak_threshold_kg_h: PositiveFloat = 100.0  # a window above this rate raises a leak alert
    stale_after_h: PositiveFloat = 6.0  # no reading for this long raises a stale alert
    report_min_gap_h: PositiveFloat = 1.0  # reports list data gaps at least this long
    report_grace_h: NonNegativeFloat = 24.0  # a period is closed this long after it ends
    delivery_timeout_s: PositiveFloat = 5.0  # per webhook attempt: connect, send, whole reply
    delivery_concurrency: PositiveInt = 32  # requests in flight per worker process
    delivery_per_subscription: PositiveInt = 8  # of those, at most this many per subscription
    delivery_max_attempts: PositiveInt = 12  # then the delivery is dead-lettered
    delivery_backoff_base_s: PositiveFloat = 2.0
    delivery_backoff_cap_s: PositiveFloat = 3600.0
    delivery_poll_s: PositiveFloat = 0.5  # how often the delivery loop looks for due work
    # Networks webhooks may reach although loopback, private, link-local, ... addresses are
    # refused: "127.0.0.0/8,::1/128,10.1.2.0/24", or "none". Unset: loopback in development,
    # none in production.
    webhook_allow_networks: str | None = None
    # NATS JetStream (service/stream.py). Set ("nats://127.0.0.1:4222"): every outbox event the
    # drain applies is published to the stream STREAM_NAME, which the workers create or update
    # at startup, on STREAM_SUBJECT_PREFIX.<event type>.<site id>. Unset: no stream at all.
    nats_url: str | None = None
    stream_name: str = "EMISSIONS"
    stream_subject_prefix: str = "emissions.v1"
    stream_max_age_s: PositiveInt = 7 * 24 * 3600  # JetStream drops older messages
    stream_max_bytes: int = -1  # the stream's size cap (oldest dropped first); -1: none
    stream_duplicate_window_s: PositiveInt = 120  # republished msg ids dropped within it
    stream_replicas: PositiveInt = 1  # copies in a NATS cluster
    stream_batch_size: PositiveInt = 500  # events one relay claim publishes, in order
    stream_lease_s: PositiveFloat = 30.0  # a claim's hold; must be < the duplicate window
    stream_publish_timeout_s: PositiveFloat = 5.0  # wait for JetStream's ack at most
    stream_backoff_base_s: PositiveFloat = 0.5
    stream_backoff_cap_s: PositiveFloat = 30.0
    stream_poll_s: PositiveFloat = 0.5  # how often the relay looks for due events
    stream_source: str = "/emissions-engine"  # CloudEvents `source` of every message

    def __post_init__(self) -> None:
        if self.webhook_allow_networks is not None:
            parse_networks(self.webhook_allow_networks)  # ValueError: refused at startup
        if self.stream_lease_s >= self.stream_duplicate_window_s:
            # A republish after a lost lease must fall in the window JetStream dedupes in.
            raise ValueError("STREAM_LEASE_S must be shorter than STREAM_DUPLICATE_WINDOW_S")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from environment variables (strings are converted and validated)."""
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            value = environ.get(name.upper())
            if value is not None and value != "":
                raw[name] = value
        raw.update(overrides)
        return msgspec.convert(raw, cls, strict=False)

    @property
    def batch_limits(self) -> BatchLimits:
        return BatchLimits(
            max_readings=self.max_readings_per_batch,
            max_methane_kg=self.max_methane_kg,
            max_future=timedelta(seconds=self.max_future_s),
            earliest=self.earliest_reading,
        )

    @property
    def gwp(self) -> Gwp:
        return gwp(self.gwp_version)

    @property
    def operator_tokens(self) -> dict[str, Actor]:
        """token -> the name and role it stands for; entries without a name or token are
        ignored, an unknown role is refused (domain.roles.UnknownRole, a ValueError)."""
        return parse_token_entries(self.admin_tokens)

    @property
    def admin_token(self) -> str | None:
        """The first admin token of ADMIN_TOKENS (the local stack's banner, the simulator)."""
        return next((t for t, a in self.operator_tokens.items() if a.role == "admin"), None)

    @property
    def webhook_networks(self) -> Networks:
        """The networks webhooks may reach despite the egress policy."""
        if self.webhook_allow_networks is None:
            return LOOPBACK if self.environment == "development" else ()
        return parse_networks(self.webhook_allow_networks)

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()] or ["*"]

    def production_problems(self) -> list[str]:
        """Why these settings must not serve production (empty in development, or when safe)."""
        if self.environment != "production":
            return []
        tokens = {token: actor.name for token, actor in self.operator_tokens.items()}
        problems = []
        if not tokens:
            problems.append("ADMIN_TOKENS is empty")
        for token, name in tokens.items():  # the token part only, whatever its role
            if token == DEV_ADMIN_TOKEN:
                problems.append(f"ADMIN_TOKENS: {name!r} has the public development token")
            elif len(token) < MIN_PRODUCTION_TOKEN_CHARS:
                problems.append(
                    f"ADMIN_TOKENS: the token of {name!r} has {len(token)} characters,"
                    f" fewer than {MIN_PRODUCTION_TOKEN_CHARS}"
                )
        if problems:
            problems.append(
                "set ADMIN_TOKENS=name:token[,name:role:token...] with tokens of at least"
                f" {MIN_PRODUCTION_TOKEN_CHARS} random characters, e.g. ADMIN_TOKENS=ops:$(python3"
                " -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        hosts = len(host_list(self.database_url))
        if hosts > 1 and target_session_attrs(self.database_url) not in ("read-write", "primary"):
            problems.append(
                f"DATABASE_URL names {hosts} hosts without target_session_attrs=read-write:"
                " writes could reach a standby; add ?target_session_attrs=read-write"
            )
        return problems

    def check_production(self) -> None:
        """Refuse (UnsafeSettings) to serve production with development secrets."""
        problems = self.production_problems()
        if problems:
            raise UnsafeSettings("ENVIRONMENT=production refuses to start: " + "; ".join(problems))

    @property
    def idempotency_retention(self) -> timedelta:
        return timedelta(hours=self.idempotency_retention_h)
