# emissions/patroni:15: one etcd member and one Patroni-managed PostgreSQL 15 per container, for
# the `ha` profile of docker-compose.yml. Built by deploy/build-base-images.sh with deploy/ as
# the context. Debian bookworm's packages only: patroni 3.0, etcd-server 3.4, python3-etcd.
#
# The cluster settings are deploy/ha/patroni.yml.in and deploy/ha/etcd.yml.in, copied in as they
# are (the same tuned values and their explanation as the cluster the tests start without
# Docker); render.py fills them in from the environment and changes only what a container needs
# (listen addresses, passwords, pg_hba, paths). Environment:
#   NODE_NAME       this node (default: the container's hostname); also its etcd member name
#   PEERS           every node's name, comma-separated, this one included (pg1,pg2,pg3)
#   POSTGRES_USER / POSTGRES_PASSWORD   the superuser (as the postgres image; rewind uses it)
#   REPLICATION_USER / REPLICATION_PASSWORD   streaming replication (replicator / replicator)
#   PATRONI_SCOPE   the cluster's name in etcd (emissions)
ARG POSTGRES_IMAGE=emissions/postgres:15
FROM ${POSTGRES_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends patroni python3-etcd etcd-server tini \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/emissions-ha && chown postgres:postgres /etc/emissions-ha \
 && chmod 700 /etc/emissions-ha
COPY ha/patroni.yml.in ha/etcd.yml.in compose-ha/render.py /usr/local/lib/emissions-ha/
COPY compose-ha/entrypoint.sh /usr/local/bin/patroni-entrypoint.sh
# The base image's data volume holds both data directories: pgdata/ (Postgres) and etcd/.
ENV PGDATA=/var/lib/postgresql/data/pgdata
EXPOSE 5432 8008 2379 2380
STOPSIGNAL SIGTERM
# tini reaps the Postgres processes a dying Patroni leaves behind and passes signals on.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/patroni-entrypoint.sh"]
CMD []
