"""arq's worker options, made from our settings when the worker starts (never at import)."""

from __future__ import annotations

from typing import Any

import structlog
from arq import cron, func

from service.infra.doorbell import DRAIN_JOB, decode_job, encode_job
from service.infra.settings import Settings
from worker import jobs

log = structlog.get_logger("worker")


async def _started(ctx: dict[str, Any]) -> None:
    log.info("worker_started", worker_id=ctx["runtime"].state.worker_id)


async def _stopped(ctx: dict[str, Any]) -> None:
    log.info("worker_stopped")


def arq_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for arq's Worker; the jobs find their resources in ctx["runtime"]."""
    return {
        "functions": [func(jobs.drain, name=DRAIN_JOB, keep_result=0, max_tries=1)],
        "cron_jobs": [
            cron(
                jobs.sweep,
                name="sweep",
                second=set(range(0, 60, settings.sweep_interval_s)),
                run_at_startup=True,
                keep_result=0,
                max_tries=1,
            ),
            cron(jobs.check_stale, name="check_stale", second=30, run_at_startup=True, max_tries=1),
            cron(
                jobs.refresh_statistics,
                name="refresh_statistics",
                second=set(range(2, 60, 5)),
                run_at_startup=True,
                keep_result=0,
                max_tries=1,
            ),
            # Every 10 minutes: retention deletes for up to 20 s a run (the job timeout is 30 s),
            # ~6x what an hourly run could keep up with; partitions are checked as often.
            cron(
                jobs.maintain,
                name="maintain",
                minute=set(range(7, 60, 10)),
                second=0,
                run_at_startup=True,
                max_tries=1,
            ),
        ],
        # Jobs are JSON both ways: a job pickled into Redis by hand is refused, never run.
        "job_serializer": encode_job,
        "job_deserializer": decode_job,
        "on_startup": _started,
        "on_shutdown": _stopped,
        "max_jobs": settings.worker_max_jobs,
        # arq polls Redis for jobs; its 0.5 s default would add ~250 ms median lag to a nudge.
        "poll_delay": settings.worker_poll_delay_s,
        "keep_result": 0,
        # Our jobs end their own loops within drain_budget_s; this only catches a stuck job. It
        # also bounds how long a SIGKILLed worker's in-progress key silences the nudges
        # (timeout + 10 s); the sweep drains meanwhile.
        "job_timeout": 30,
        "health_check_interval": 5,
    }
