"""`emissions`: the one command for every operational task."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from cli import (
    aggregates,
    deliveries,
    devices,
    maintain,
    migrate,
    outbox,
    run,
    serve,
    simulate,
    sites,
    stream,
    subscriptions,
    tokens,
)
from domain.roles import UnknownRole
from service.infra.logs import configure_logging
from service.infra.settings import Settings

# Commands that serve: in production they refuse development secrets before starting anything.
SERVING = {"serve", "worker", "run"}
# Each module adds its nouns' subcommands; the order is the order of `emissions --help`.
COMMANDS = (
    migrate,
    serve,
    simulate,
    run,
    outbox,
    aggregates,
    sites,
    devices,
    tokens,
    subscriptions,
    deliveries,
    stream,
    maintain,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emissions", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    if args.command in SERVING:
        try:
            settings.operator_tokens  # noqa: B018 - a mistyped role refuses to start
        except UnknownRole as exc:
            print(f"refusing to start: {exc}", file=sys.stderr)
            return 2
    if args.command in SERVING and (problems := settings.production_problems()):
        print("ENVIRONMENT=production refuses to start:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    command: Any = args.run
    if getattr(args, "sync", False):
        return int(command(settings, args))
    return int(asyncio.run(command(settings, args)))


if __name__ == "__main__":
    sys.exit(main())
