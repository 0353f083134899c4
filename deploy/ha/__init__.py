"""A local HA PostgreSQL (Patroni + etcd) that tests and `make ha-up` start: see cluster.py."""
