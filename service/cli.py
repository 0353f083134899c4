"""`emissions`: the one command for every operational task."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import gc
import importlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from domain.events import EVENT_TYPES
from service import alerts, auth, db, migrate, ops, subscriptions
from service.errors import MigrationError
from service.logs import configure_logging
from service.settings import Settings

log = structlog.get_logger("cli")
CLI_ACTOR = "cli"


async def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    if not args.no_create_db and await migrate.create_database_if_missing(settings.database_url):
        log.info("database_created")
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await migrate.migrate(conn)
        partitions = await migrate.ensure_partitions(conn)
    except MigrationError as exc:
        log.error("migrate_refused", reason=exc.detail)
        return 1
    finally:
        await conn.close()
    log.info("migrate_done", applied=applied, partitions_created=partitions)
    return 0


async def _with_conn(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[int]]
) -> int:
    conn = await db.connect(settings.database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    selection = ops.ReplaySelection(
        event_ids=args.ids or None,
        site_id=args.site,
        start=args.start,
        end=args.end,
        only_dead=args.all_dead,
    )
    if sum([bool(args.ids), args.all_dead, args.site is not None and not args.all_dead]) != 1:
        log.error("replay_refused", reason="give exactly one of --ids, --site, --all-dead")
        return 2

    async def work(conn: asyncpg.Connection) -> int:
        ids, entry = await ops.replay(
            conn, selection=selection, actor=CLI_ACTOR, dry_run=args.dry_run
        )
        log.info("replay", event_ids=ids, count=len(ids), dry_run=args.dry_run, audit_id=entry.id)
        return 0

    return await _with_conn(settings, work)


async def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        sites, buckets, entry = await ops.rebuild(conn, site_id=args.site, actor=CLI_ACTOR)
        log.info("rebuild", sites=sites, buckets=buckets, audit_id=entry.id)
        return 0

    return await _with_conn(settings, work)


async def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        done = await ops.maintain(conn, outbox_days=settings.outbox_retention_days)
        log.info("maintenance", **done)
        return 0

    return await _with_conn(settings, work)


async def _devices(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        if args.devices_command == "create":
            async with conn.transaction():
                key, secret = await auth.create_device_key(
                    conn,
                    device_id=args.device_id,
                    site_ids=args.site,
                    name=args.name,
                    actor=CLI_ACTOR,
                )
                await ops.audit(
                    conn, actor=CLI_ACTOR, action="device.create", params={"key_id": key.id}
                )
            # The one place a secret is printed: to the operator's terminal, never to the log.
            print(f"device key for {key.device_id} (id {key.id}, sites {key.site_ids}):")
            print(secret)
            print("store it now: it is not shown again")
        elif args.devices_command == "list":
            for key in await auth.list_device_keys(conn, site_id=args.site):
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(
                    f"{key.id:>6}  {key.device_id:<24} {key.key_prefix}…  sites {key.site_ids}"
                    f"  {state}  {key.name or ''}"
                )
        else:
            async with conn.transaction():
                key = await auth.revoke_device_key(conn, key_id=args.id)
                await ops.audit(
                    conn, actor=CLI_ACTOR, action="device.revoke", params={"key_id": args.id}
                )
            print(f"revoked key {key.id} of {key.device_id}")
        return 0

    return await _with_conn(settings, work)


async def _subscriptions(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        if args.subscriptions_command == "create":
            try:
                sub, secret = await subscriptions.create(
                    conn,
                    url=args.url,
                    event_types=args.event_type,
                    description=args.description,
                    secret=args.secret,
                    actor=CLI_ACTOR,
                )
            except subscriptions.InvalidSubscription as exc:
                for error in exc.errors:
                    log.error("subscription_refused", field=error.pointer, reason=error.detail)
                return 2
            # The secret goes to the operator's terminal only, never to the log.
            print(f"subscription {sub.id} to {sub.url} for {', '.join(sub.event_types)}")
            print(f"signing secret: {secret}")
            print("store it now: it is not shown again")
        elif args.subscriptions_command == "list":
            for sub in await subscriptions.list_all(conn, include_disabled=args.all):
                h = sub.health
                assert h is not None
                state = f"disabled {sub.disabled_at:%Y-%m-%d}" if sub.disabled_at else "live"
                print(
                    f"{sub.id:>5}  {sub.url}  [{', '.join(sub.event_types)}]  {state}  "
                    f"delivered/h {h.delivered_last_hour}  pending {h.pending}  "
                    f"backoff {h.in_backoff}  dead {h.dead}"
                    + (f"  last error: {h.last_error[:80]}" if h.last_error else "")
                )
        else:
            sub = await subscriptions.disable(conn, subscription_id=args.id, actor=CLI_ACTOR)
            print(f"disabled subscription {sub.id} ({sub.url})")
        return 0

    return await _with_conn(settings, work)


async def _replay_deliveries(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        try:
            ids, entry = await subscriptions.replay(
                conn,
                delivery_ids=args.ids or None,
                subscription_id=args.subscription,
                only_dead=args.all_dead,
                actor=CLI_ACTOR,
                dry_run=args.dry_run,
            )
        except subscriptions.InvalidReplay:
            reason = "give exactly one of --ids, --subscription, --all-dead"
            log.error("replay_refused", reason=reason)
            return 2
        log.info(
            "deliveries_replay",
            delivery_ids=ids,
            count=len(ids),
            dry_run=args.dry_run,
            audit_id=entry.id,
        )
        return 0

    return await _with_conn(settings, work)


async def _tokens(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn: asyncpg.Connection) -> int:
        if args.tokens_command == "create":
            secret = await auth.create_operator_token(conn, name=args.name)
            print(f"admin token {args.name!r}:")
            print(secret)
            print("store it now: it is not shown again")
            return 0
        if not await auth.revoke_operator_token(conn, name=args.name):
            print(f"no token named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked token {args.name!r}")
        return 0

    return await _with_conn(settings, work)


def serve_app() -> Any:
    """The API app, built in each server process, then tidied for a long life under load.

    gc.freeze(): the ~75k objects of imports and app construction live as long as the process;
    left in the collector's generations, every full collection walks them all (a ~35 ms pause
    every few seconds under load, seen at p99). Frozen, a full collection walks only what
    requests allocated.

    malloc_trim(0): building the app peaks at ~66 MB of Python allocations (the OpenAPI
    generation imports polyfactory, which loads every faker locale) of which ~9 MB stay;
    glibc keeps the freed heap resident unless asked to return it: ~40 MB of RSS per process.
    """
    app = importlib.import_module("api.app").create_app()
    gc.collect()
    gc.freeze()
    _return_free_heap()
    return app


def _return_free_heap() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, nothing lost
        pass


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn  # the server is only needed by this command

    uvicorn.run(
        "service.cli:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=args.workers,
        access_log=False,  # the app logs one line per request itself
        log_level="warning",
        proxy_headers=True,
    )
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    # By name: the service layer does not import the edges; this is only the entry point.
    runner: Callable[[Settings], int] = importlib.import_module("worker.main").run
    return runner(settings)


def _run_stack(settings: Settings, args: argparse.Namespace) -> int:
    runner: Callable[[Settings], int] = importlib.import_module("service.runner").run
    return runner(settings)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from service.simulator import Options, simulate

    token = args.admin_token or next(iter(settings.admin_token_map), "")
    options = Options(
        base_url=args.url or f"http://{settings.host}:{settings.port}",
        admin_token=token,
        sites=args.sites,
        devices=args.devices,
        rate=args.rate,
        duration_s=args.duration,
        faults=args.faults,
        seed=args.seed,
    )
    return asyncio.run(simulate(options, Console()))


def _timestamp(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs an explicit UTC offset, e.g. 2026-01-01T00:00Z")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emissions", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("migrate", help="apply pending migrations, create partitions ahead")
    m.add_argument("--no-create-db", action="store_true", help="fail if the database is missing")
    m.set_defaults(run=_migrate)
    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--workers", type=int, default=1, help="API processes (default 1)")
    s.set_defaults(run=_serve, sync=True)
    sim = sub.add_parser("simulate", help="devices over a faulty network, then an exact check")
    sim.add_argument("--sites", type=int, default=5)
    sim.add_argument("--devices", type=int, default=20)
    sim.add_argument("--rate", type=float, default=50, help="batches per second")
    sim.add_argument("--duration", type=float, default=60, help="seconds")
    sim.add_argument("--faults", type=float, default=0.2, help="fault probability per try")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--url", help="API base URL (default http://HOST:PORT from settings)")
    sim.add_argument("--admin-token", help="default: the first of ADMIN_TOKENS")
    sim.set_defaults(run=_simulate, sync=True)
    st = sub.add_parser("run", help="the whole local stack: Postgres, Redis, API, worker")
    st.set_defaults(run=_run_stack, sync=True)
    w = sub.add_parser("worker", help="run an outbox worker (arq, supervised)")
    w.set_defaults(run=_worker, sync=True)
    outbox = sub.add_parser("outbox", help="outbox operations").add_subparsers(
        dest="outbox_command", required=True
    )
    r = outbox.add_parser("replay", help="make events due again (idempotent)")
    r.add_argument("--ids", type=int, nargs="+", help="event ids")
    r.add_argument("--site", type=int, help="events of this site")
    r.add_argument("--from", dest="start", type=_timestamp, help="with --site: data from")
    r.add_argument("--to", dest="end", type=_timestamp, help="with --site: data before")
    r.add_argument("--all-dead", action="store_true", help="every dead event (of --site)")
    r.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    r.set_defaults(run=_replay)
    agg = sub.add_parser("aggregates", help="aggregate operations").add_subparsers(
        dest="aggregates_command", required=True
    )
    b = agg.add_parser("rebuild", help="recompute buckets and totals from raw data")
    b.add_argument("--site", type=int, help="only this site (default: every site)")
    b.set_defaults(run=_rebuild)
    dev = sub.add_parser("devices", help="device keys").add_subparsers(
        dest="devices_command", required=True
    )
    dc = dev.add_parser("create", help="a new key (printed once)")
    dc.add_argument("--site", type=int, action="append", required=True, help="repeatable")
    dc.add_argument("--device-id", required=True, help="the device this key belongs to")
    dc.add_argument("--name", help="a label for the key")
    dl = dev.add_parser("list", help="keys (never the secrets)")
    dl.add_argument("--site", type=int)
    dr = dev.add_parser("revoke", help="revoke a key by id")
    dr.add_argument("id", type=int)
    for p in (dc, dl, dr):
        p.set_defaults(run=_devices)
    tok = sub.add_parser("tokens", help="named admin tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    for name in ("create", "revoke"):
        t = tok.add_parser(name, help=f"{name} an admin token")
        t.add_argument("--name", required=True)
        t.set_defaults(run=_tokens)
    subs = sub.add_parser("subscriptions", help="webhook subscriptions").add_subparsers(
        dest="subscriptions_command", required=True
    )
    sc = subs.add_parser("create", help="a new subscription (its secret is printed once)")
    sc.add_argument("--url", required=True, help="the receiver, http(s)://...")
    sc.add_argument(
        "--event-type", action="append", required=True, help=f"repeatable: {', '.join(EVENT_TYPES)}"
    )
    sc.add_argument("--description", default="")
    sc.add_argument("--secret", help="your own whsec_... secret (default: generated)")
    sl = subs.add_parser("list", help="subscriptions and their delivery health")
    sl.add_argument("--all", action="store_true", help="disabled ones too")
    sd = subs.add_parser("disable", help="stop delivering to a subscription")
    sd.add_argument("id", type=int)
    for p in (sc, sl, sd):
        p.set_defaults(run=_subscriptions)
    deliveries = sub.add_parser("deliveries", help="webhook deliveries").add_subparsers(
        dest="deliveries_command", required=True
    )
    dre = deliveries.add_parser("replay", help="send deliveries again (subscribers dedupe by id)")
    dre.add_argument("--ids", type=int, nargs="+", help="delivery ids")
    dre.add_argument("--subscription", type=int, help="deliveries of this subscription")
    dre.add_argument("--all-dead", action="store_true", help="only dead ones (of --subscription)")
    dre.add_argument("--dry-run", action="store_true", help="only say what would be replayed")
    dre.set_defaults(run=_replay_deliveries)
    mt = sub.add_parser("maintain", help="partitions ahead, outbox and key retention")
    mt.set_defaults(run=_maintain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    alerts.configure(alerts.rules_from(settings))
    run: Any = args.run
    if getattr(args, "sync", False):
        return int(run(settings, args))
    return int(asyncio.run(run(settings, args)))


if __name__ == "__main__":
    sys.exit(main())
