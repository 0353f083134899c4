"""What the use cases stand on: pool, named queries, migrations, settings, logs, metrics,
the doorbell, health probes and the errors they share."""
