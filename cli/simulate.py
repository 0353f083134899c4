"""`emissions simulate`: devices over a faulty network against a running API, then a check."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from service.infra.settings import Settings


def add_commands(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="devices over a faulty network, then an exact check")
    sim.add_argument("--sites", type=int, default=5)
    sim.add_argument("--devices", type=int, default=20)
    sim.add_argument("--rate", type=float, default=50, help="batches per second")
    sim.add_argument("--duration", type=float, default=60, help="seconds")
    sim.add_argument("--faults", type=float, default=0.2, help="fault probability per try")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--url", help="API base URL (default http://HOST:PORT from settings)")
    sim.add_argument("--admin-token", help="default: the first admin token of ADMIN_TOKENS")
    sim.set_defaults(run=_simulate, sync=True)


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from tools.simulator import Options, simulate  # an HTTP client: only this command needs it

    token = args.admin_token or settings.admin_token or ""
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
