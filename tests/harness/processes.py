"""Our programs as real processes, started one way for integration, e2e and bench: `python -m`
with an environment, output to files (a pipe nobody reads fills up and blocks the process),
ready when a check holds, stopped with SIGTERM then SIGKILL, the log's tail in every failure."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]

_LIVE: set[Process] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that. At the
    deadline, fail with `message` and the timeout, or with what `message()` says then."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                message() if callable(message) else f"{message} (after {timeout}s)"
            )
        await asyncio.sleep(interval)


class Process:
    """`python -m ARGS` run from the project root, its output in LOG_DIR/NAME.log (stderr in
    NAME.stderr.log with stderr_apart). start() and stop() may alternate; the log grows."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        stderr_apart: bool = False,
        cwd: Path = ROOT,
    ) -> None:
        self.argv = [sys.executable, "-m", *args]
        self.cwd = cwd  # `-m` imports from here first (another checkout's tree, for an A/B)
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.stderr_path = log_dir / f"{name}.stderr.log" if stderr_apart else None
        # Unbuffered: a line reaches the log when it is written, not when the process exits.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # the last stop() needed SIGKILL

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def ready(self) -> Any:
        """Whether the process is ready (sync or async); subclasses say what that means."""
        return True

    def spawn(self) -> None:
        """Start the process without waiting for anything."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            out = files.enter_context(self.log_path.open("ab"))
            err = (
                files.enter_context(self.stderr_path.open("ab"))
                if self.stderr_path
                else subprocess.STDOUT
            )
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.killed = False
        _LIVE.add(self)

    async def start(self, *, timeout: float = 30.0) -> None:
        """Start the process and wait until it is ready; stopped if it never gets there."""
        self.spawn()
        try:
            await self.wait_until(self.ready, timeout=timeout, what="got ready")
        except BaseException:
            await self.stop(timeout=10)  # SIGTERM first: a supervisor takes its children along
            raise

    async def wait_until(
        self,
        condition: Callable[[], Any],
        *,
        timeout: float = 30.0,
        interval: float = 0.1,
        what: str = "done",
    ) -> Any:
        """Poll `condition` (sync or async) until it is truthy and return it; fail at once if
        the process exits first, and after `timeout`, both with the end of its log."""

        async def check() -> Any:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if not value and not self.running:
                raise AssertionError(f"{self.name} exited ({self.returncode}){self.tail()}")
            return value

        return await wait_for(
            check,
            timeout=timeout,
            interval=interval,
            message=lambda: f"{self.name} never {what} (in {timeout}s){self.tail()}",
        )

    async def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it is still running after `timeout` (self.killed says so);
        the exit code."""
        return await self._signal(signal.SIGTERM, timeout)

    async def kill(self) -> int:
        """SIGKILL: no cleanup, no rollback message to Postgres; the socket just closes."""
        return await self._signal(signal.SIGKILL, 15.0)

    async def _signal(self, sig: signal.Signals, timeout: float) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            self.proc.kill()
            return self.proc.wait()
        finally:
            _LIVE.discard(self)

    def close(self) -> None:
        """Kill if still running (the cleanup path: never raises for a dead process)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        _LIVE.discard(self)

    def tail(self, lines: int = 30) -> str:
        """The end of the log file(s), for failure messages."""
        parts = []
        for path in (self.log_path, self.stderr_path):
            if path is not None and path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"\n--- {path} ---\n" + "\n".join(text))
        return "".join(parts)


@atexit.register
def _kill_all() -> None:
    """No run leaves a process of ours behind, however it ended."""
    for process in list(_LIVE):
        process.close()


class ApiProcess(Process):
    """`python -m cli serve` on a free port that it keeps across stop() and start(); ready when
    /health answers 200. `workers` passes `--workers N`."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        log_dir: Path,
        name: str = "api",
        workers: int | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.workers = workers
        args = ["cli", "serve", *(["--workers", str(workers)] if workers is not None else [])]
        own = {"HOST": self.host, "PORT": str(self.port), "LOG_JSON": "true"}
        super().__init__(args, name=name, log_dir=log_dir, env={**own, **env}, cwd=cwd)

    async def ready(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return (await client.get(f"{self.url}/health")).status_code == 200
        except httpx.HTTPError:
            return False


class WorkerProcess(Process):
    """`python -m cli worker` logging JSON lines to NAME.log (stderr apart); ready once it logs
    `worker_started`. Use as `async with WorkerProcess(...) as worker:` (killed on exit)."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        log_dir: Path,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
    ) -> None:
        own = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "LOG_JSON": "true",
            "SWEEP_INTERVAL_S": "1",
        }
        super().__init__(
            ["cli", "worker"],
            name=name,
            log_dir=log_dir,
            env={**own, **(env or {})},
            stderr_apart=True,
        )
        self._ready_event: str | None = "worker_started"

    async def start(self, *, ready: str | None = "worker_started", timeout: float = 15.0) -> None:
        """Start the process; with `ready`, wait until it logs that event."""
        self._ready_event = ready
        await super().start(timeout=timeout)

    def ready(self) -> Any:
        return self._ready_event is None or self.events(self._ready_event)

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and the exit code; a worker that needs SIGKILL fails the test."""
        code = await self.stop(timeout=timeout)
        if self.killed:
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout}s{self.tail()}")
        return code

    async def __aenter__(self) -> WorkerProcess:
        if self.proc is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def logs(self) -> list[dict[str, Any]]:
        """Every complete JSON line of stdout (structlog's output), in order."""
        if not self.log_path.exists():
            return []
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # still being written
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    lines.append(record)
        return lines

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.logs() if line.get("event") == event]

    def applied(self, *, trigger: str | None = None) -> int:
        """Events this process applied, from its `drained` log lines (optionally one trigger)."""
        return sum(
            int(line["events"])
            for line in self.events("drained")
            if trigger is None or line.get("trigger") == trigger
        )
