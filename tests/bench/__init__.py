"""Throughput, latency, lag, growth and memory of the ingest and drain paths, in one run.

`python -m tests.bench [--quick] [--json PATH]` (or `make bench`); docs/benchmarks.md.
"""
