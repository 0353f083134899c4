"""Real PostgreSQL and Redis servers for the test suite. Never mocks.

Each server is chosen, independently, in this order:

1. ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` from the environment (an existing server; the
   Postgres role must be able to ``CREATE DATABASE``).
2. testcontainers (``postgres:15`` / ``redis:7``) when a Docker engine answers.
3. Local servers started from the installed binaries (``initdb``/``postgres``, ``redis-server``)
   on free ports, in a fresh temp dir, listening on 127.0.0.1 only, by ``cli.localservers``
   (the code ``emissions run`` starts its servers with).

Local and container servers support ``stop()``/``start()`` (same port, same data) for fault
tests; ``close()`` tears down for good. Everything still running at interpreter exit is closed
by an ``atexit`` hook.

Import this module as ``tests.harness.services`` (one import path, one registry of servers).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import redis

from cli.localservers import (
    NON_DURABLE,
    LocalNats,
    LocalPostgres,
    LocalRedis,
    LocalServerError,
    PortTaken,
)

__all__ = [
    "HarnessError",
    "NatsServer",
    "PostgresServer",
    "RedisServer",
    "UnsupportedControlError",
    "start_nats",
    "start_postgres",
    "start_redis",
]

READY_TIMEOUT = 30.0
_POLL_INTERVAL = 0.05
_ELSEWHERE_HINT = "(or point the tests at running servers with TEST_DATABASE_URL / TEST_REDIS_URL)"

T = TypeVar("T")
Probe = Callable[[], str | None]  # None when ready, else why not (for the error message)


class HarnessError(RuntimeError):
    """A test service could not be provided."""


class UnsupportedControlError(HarnessError, NotImplementedError):
    """stop()/start() asked of a server the harness does not own (e.g. one from an env URL)."""


class _Control(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- public API


class PostgresServer:
    """A running PostgreSQL server; ``url`` is a superuser connection to ``postgres``."""

    def __init__(self, url: str, control: _Control, kind: str) -> None:
        self.url = url
        self.kind = kind  # "env" | "container" | "local"
        self._control = control

    def url_for(self, dbname: str) -> str:
        """The same server and credentials, connected to database ``dbname``."""
        return urlunsplit(urlsplit(self.url)._replace(path="/" + quote(dbname, safe="")))

    def stop(self) -> None:
        """Shut the server down (fast shutdown); ``start()`` brings it back."""
        self._control.stop()

    def start(self) -> None:
        """Start it again on the same port with the same data; returns once it accepts queries."""
        self._control.start()

    def close(self) -> None:
        """Final teardown: stop the server and delete its data. Idempotent."""
        self._control.close()

    def __repr__(self) -> str:
        return f"PostgresServer(kind={self.kind!r}, url={_mask(self.url)!r})"


class RedisServer:
    """A running Redis server; ``url`` points at database 0 unless an env URL says otherwise."""

    def __init__(self, url: str, control: _Control, kind: str) -> None:
        parts = urlsplit(url)
        self.url = url
        self.host: str = parts.hostname or "localhost"
        self.port: int = parts.port or 6379
        self.kind = kind
        self._control = control

    def stop(self) -> None:
        """Shut the server down; connections are refused until ``start()``."""
        self._control.stop()

    def start(self) -> None:
        """Start it again on the same port; returns once it answers PING."""
        self._control.start()

    def close(self) -> None:
        """Final teardown. Idempotent."""
        self._control.close()

    def __repr__(self) -> str:
        return f"RedisServer(kind={self.kind!r}, url={_mask(self.url)!r})"


class NatsServer:
    """A running nats-server with JetStream; ``url`` is nats://127.0.0.1:PORT. Always a
    local server the harness starts (never the one that may run on 4222)."""

    def __init__(self, url: str, server: LocalNats, control: _Control) -> None:
        self.url = url
        self.kind = "local"
        self._server = server
        self._control = control

    def pause(self) -> None:
        """SIGSTOP it: publishes go into its socket and no ack comes back until resume()."""
        self._server.pause()

    def resume(self) -> None:
        self._server.resume()

    def stop(self) -> None:
        """Stop the server (SIGTERM); ``start()`` brings it back, same port, same store."""
        self._control.stop()

    def start(self) -> None:
        """Start it again; returns once it accepts connections."""
        self._control.start()

    def close(self) -> None:
        """Final teardown: stop it and delete its store. Idempotent."""
        self._control.close()

    def __repr__(self) -> str:
        return f"NatsServer(url={self.url!r})"


def start_nats() -> NatsServer:
    """Start a local nats-server with JetStream on a free port, its store in a temp dir."""
    server, control = _start_local("emissions-nats-", LocalNats)
    return NatsServer(server.url, server, control)


def start_postgres(
    *, durable: bool = False, local: bool = False, settings: Mapping[str, str] | None = None
) -> PostgresServer:
    """Provide a PostgreSQL server: env URL, else a container, else a local server.

    The suite's servers trade durability for speed (fsync, synchronous_commit and
    full_page_writes off). ``durable=True`` keeps PostgreSQL's defaults instead (for
    benchmarks) and never uses ``TEST_DATABASE_URL``, whose settings are unknown.
    ``local=True`` always starts the local server (benchmarks: the same setup every run,
    no container networking in the numbers). ``settings`` are more server settings, for the
    local server only.
    """
    env_url = os.environ.get("TEST_DATABASE_URL")
    if env_url and not durable and not local:
        _wait_until_ready(f"PostgreSQL at TEST_DATABASE_URL={_mask(env_url)}", _pg_probe(env_url))
        return PostgresServer(env_url, _Unowned("TEST_DATABASE_URL"), "env")
    if not local and _docker_available():
        try:
            return _container_postgres(durable=durable)
        except Exception as exc:  # e.g. an engine that cannot pull images
            _warn_fallback("PostgreSQL", exc)
    return _local_postgres(durable=durable, settings=settings)


def start_redis(*, local: bool = False) -> RedisServer:
    """Provide a Redis server: env URL, else a container, else a local server
    (``local=True``: always the local server, as for start_postgres)."""
    env_url = os.environ.get("TEST_REDIS_URL")
    if env_url and not local:
        _wait_until_ready(f"Redis at TEST_REDIS_URL={_mask(env_url)}", _redis_probe(env_url))
        return RedisServer(env_url, _Unowned("TEST_REDIS_URL"), "env")
    if not local and _docker_available():
        try:
            return _container_redis()
        except Exception as exc:  # e.g. an engine that cannot pull images
            _warn_fallback("Redis", exc)
    return _local_redis()


def _warn_fallback(what: str, exc: Exception) -> None:
    """A Docker engine that answers but cannot run the container (offline, no image): say
    so and use the local server instead of failing the whole suite."""
    import warnings

    warnings.warn(
        f"{what} container failed ({type(exc).__name__}: {str(exc)[:200]}); "
        "using a local server instead",
        stacklevel=3,
    )


# --------------------------------------------------------------------------- readiness


def _wait_until_ready(what: str, probe: Probe, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (reason := probe()) is not None:
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} not ready after {timeout:.0f}s ({reason})")
        time.sleep(_POLL_INTERVAL)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion even when the caller is inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_probe(url: str) -> Probe:
    async def attempt() -> str | None:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
        return None

    return lambda: _run_in_thread(attempt())


def _redis_probe(url: str) -> Probe:
    def attempt() -> str | None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
        return None

    return attempt


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


# --------------------------------------------------------------------------- lifecycle registry

_LIVE: dict[int, _Control] = {}
_OWNER_PID = os.getpid()


def _register(control: _Control) -> None:
    _LIVE[id(control)] = control


def _unregister(control: _Control) -> None:
    _LIVE.pop(id(control), None)


@atexit.register
def _close_all() -> None:
    if os.getpid() != _OWNER_PID:  # a forked child must not tear down the parent's servers
        return
    for control in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            control.close()


class _Unowned:
    """A server from an env URL: the harness neither stops nor deletes it."""

    def __init__(self, source: str) -> None:
        self._source = source

    def _unsupported(self, verb: str) -> UnsupportedControlError:
        return UnsupportedControlError(
            f"cannot {verb} a server given by {self._source}; unset it to let the harness "
            "start its own (container or local) server"
        )

    def stop(self) -> None:
        raise self._unsupported("stop")

    def start(self) -> None:
        raise self._unsupported("start")

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- local processes
# Started by cli.localservers, the code `emissions run` uses; here on a free port, in a temp dir.


class _LocalControl:
    """A local server the harness owns: stop()/start() keep its port and data; close() deletes."""

    def __init__(self, server: LocalPostgres | LocalRedis | LocalNats, workdir: Path) -> None:
        self._server = server
        self._workdir = workdir
        self.log = server.log  # the bench keeps the Postgres log
        _register(self)

    def start(self) -> None:
        try:
            self._server.start()
        except LocalServerError as exc:
            raise HarnessError(str(exc)) from exc

    def stop(self) -> None:
        self._server.stop()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            _unregister(self)
            shutil.rmtree(self._workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


S = TypeVar("S", LocalPostgres, LocalRedis, LocalNats)


def _start_local(prefix: str, make: Callable[[Path, int], S]) -> tuple[S, _LocalControl]:
    """Start a server in a fresh temp dir on a free port, retrying if another process grabbed
    the port first; the temp dir goes with the server (at once if it never starts)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for attempt in range(3):
            server = make(workdir, _free_port())
            try:
                server.start()
            except PortTaken:
                if attempt == 2:
                    raise
                continue
            return server, _LocalControl(server, workdir)
        raise AssertionError("unreachable")
    except LocalServerError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise HarnessError(f"{exc}\n{_ELSEWHERE_HINT}") from exc
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _local_postgres(
    *, durable: bool = False, settings: Mapping[str, str] | None = None
) -> PostgresServer:
    server, control = _start_local(
        "emissions-pg-",
        lambda workdir, port: LocalPostgres(
            workdir, port, durable=durable, settings={"max_connections": "200", **(settings or {})}
        ),
    )
    return PostgresServer(server.url(), control, "local")


def _local_redis() -> RedisServer:
    server, control = _start_local(
        "emissions-redis-", lambda workdir, port: LocalRedis(workdir, port, durable=False)
    )
    return RedisServer(server.url, control, "local")


# --------------------------------------------------------------------------- containers


@functools.cache
def _docker_available() -> bool:
    """Does a Docker engine answer, found the way testcontainers finds it (env, context)?"""
    try:
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient(timeout=3).client
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class _ContainerControl:
    """stop()/start() the same container (same host port binding, same filesystem)."""

    def __init__(self, container: Any, probe: Probe) -> None:
        self._container = container
        self._probe = probe
        self.what = f"{container.image} container"
        _register(self)

    def stop(self) -> None:
        self._container.get_wrapped_container().stop(timeout=10)

    def start(self) -> None:
        self._container.get_wrapped_container().start()
        _wait_until_ready(self.what, self._probe)

    def close(self) -> None:
        _unregister(self)
        self._container.stop()  # removes the container and its volumes


def _container_control(container: Any, probe: Probe) -> _ContainerControl:
    """Adopt a started container, then wait until it serves; removes it if it never does."""
    control = _ContainerControl(container, probe)
    try:
        _wait_until_ready(control.what, probe)
    except BaseException:
        control.close()
        raise
    return control


def _container_postgres(*, durable: bool = False) -> PostgresServer:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.postgres import PostgresContainer

    port = _free_port()
    container = PostgresContainer(
        "postgres:15", username="postgres", password="postgres", dbname="postgres", driver=None
    )
    container.with_bind_ports(5432, port)
    fast = "".join(f" -c {key}={value}" for key, value in NON_DURABLE.items())
    container.with_command(f"postgres{'' if durable else fast} -c max_connections=200")
    container.start()
    host, mapped = container.get_container_host_ip(), container.get_exposed_port(5432)
    url = f"postgresql://postgres:postgres@{host}:{mapped}/postgres"
    return PostgresServer(url, _container_control(container, _pg_probe(url)), "container")


def _container_redis() -> RedisServer:
    from testcontainers.core.container import DockerContainer

    port = _free_port()
    container = DockerContainer("redis:7").with_bind_ports(6379, port)
    container.start()
    host, mapped = container.get_container_host_ip(), container.get_exposed_port(6379)
    url = f"redis://{host}:{mapped}/0"
    return RedisServer(url, _container_control(container, _redis_probe(url)), "container")
