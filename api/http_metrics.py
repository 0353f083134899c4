"""HTTP request metrics by route template, recorded by the request context with bound labels.

Same names, labels and help texts as Litestar's Prometheus plugin, which this replaces: it
built a Request and looked up four labelled children per request. Unlike the plugin, every
request is counted: one that matches no route (404, 405) as path="unmatched", one refused before
routing (load shed, too many headers, a host not served) as path="refused"; never its raw path,
which would make a series per path anyone cares to request. Only scrapes of /metrics are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from litestar.types import Scope
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.infra.metrics import API

LABELS = ("method", "path", "status_code", "app_name")
APP_NAME = "emissions"
UNCOUNTED = "/metrics"  # scrapes are not requests to count
UNMATCHED = "unmatched"  # the path label of a request no route matched (no "/": never a route)
REFUSED = "refused"  # ... and of one answered before routing
# Any token is a method to the HTTP parser; a label per invented one would be unbounded too.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"))

REQUESTS = Counter("emissions_http_requests_total", "Total requests", LABELS, registry=API)
DURATION = Histogram(
    "emissions_http_request_duration_seconds",
    "Request duration, in seconds",
    LABELS,
    registry=API,
)
ERRORS = Counter(
    "emissions_http_requests_error_total", "Total errors in requests", LABELS, registry=API
)


class _Bound(NamedTuple):
    requests: Counter
    duration: Histogram
    errors: Counter | None  # created on the first 5xx only, as the plugin did


_bound: dict[tuple[str, str, int], _Bound] = {}
# Requests in progress, by id(scope): read at scrape time instead of counted per request.
_in_flight: dict[int, Scope] = {}


def in_flight() -> int:
    return len(_in_flight)


def started(scope: Scope) -> None:
    _in_flight[id(scope)] = scope


def finished(scope: Scope, status: int, seconds: float) -> None:
    """Count a request by its route template; unrouted ones (404, 405) have none."""
    del _in_flight[id(scope)]
    template = scope.get("path_template")
    if template == UNCOUNTED:
        return
    _count(_method(scope), template or UNMATCHED, status, seconds)


def refused(scope: Scope, status: int, seconds: float) -> None:
    """Count a request answered before routing (it never was in flight)."""
    _count(_method(scope), REFUSED, status, seconds)


def _method(scope: Scope) -> str:
    method = str(scope.get("method"))
    return method if method in _METHODS else "other"


def _count(method: str, template: str, status: int, seconds: float) -> None:
    key = (method, template, status)
    bound = _bound.get(key)
    if bound is None:
        values = (key[0], template, str(status), APP_NAME)
        bound = _bound[key] = _Bound(
            REQUESTS.labels(*values),
            DURATION.labels(*values),
            ERRORS.labels(*values) if status >= 500 else None,
        )
    bound.requests.inc()
    bound.duration.observe(seconds)
    if bound.errors is not None:
        bound.errors.inc()


class _InProgress(Collector):
    """emissions_http_requests_in_progress, labelled status_code=200 as the plugin did.

    Exact at scrape time: routing runs without an await, so every request in flight while
    the scrape runs already has its route template.
    """

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(((method, path) for method, path, _ in _bound), 0)
        for scope in list(_in_flight.values()):
            template = scope.get("path_template")
            if template is not None and template != UNCOUNTED:
                key = (str(scope.get("method")), template)
                counts[key] = counts.get(key, 0) + 1
        family = self._family()
        for (method, path), n in counts.items():
            family.add_metric([method, path, "200", APP_NAME], n)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "emissions_http_requests_in_progress",
            "Total requests currently in progress",
            labels=LABELS,
        )


API.register(_InProgress())
