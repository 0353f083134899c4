"""The A/B bench's CPU split: a py-spy sample counts for the innermost frame a category names,
and only up to the event loop's own frames (make bench-small)."""

from __future__ import annotations

from tests.bench.small_ab import OTHER, categorize

ROOT = (
    "<module> (<string>:1);spawn_main (multiprocessing/spawn.py:122);"
    "Server.run (uvicorn/server.py:86);Runner.run (asyncio/runners.py:118)"
)
HANDLER = (
    "RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:422);"
    "RequestContext.__call__ (api/context.py:120);"
    "ingest_measurements (api/routes/measurements.py:87);Ingest.accept (service/ingest.py:117)"
)


def test_samples_count_for_the_innermost_named_frame() -> None:
    raw = "\n".join(
        [
            f"{ROOT};{HANDLER};record_batch (service/ingest.py:290);"
            "Connection.fetchrow (asyncpg/connection.py:748) 7",
            f"{ROOT};{HANDLER};check_batch (domain/readings.py:80) 3",
            f"{ROOT};{HANDLER} 2",
            f"{ROOT} 5",
            # Another thread's stack (the log queue's listener) is not the event loop's CPU.
            "Thread._bootstrap (threading.py:995);Queue.get (queue.py:171) 11",
        ]
    )
    assert categorize(raw) == {
        "SQL round trips (asyncpg)": 7,
        "checks (auth, rate, readings, fingerprint)": 3,
        "ingest service (around the SQL)": 2,
        OTHER: 5,
    }
