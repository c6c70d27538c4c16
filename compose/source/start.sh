#!/bin/sh
# The migration source: PostgreSQL 17 from the node image, without Patroni, shaped as a
# hosted Supabase database is (wal_level logical, slots and senders for a subscriber).
# The superuser's password arrives in the environment and goes into initdb only.
set -eu
PGDATA=/var/lib/postgresql/data/pgdata
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  umask 077
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
  initdb -D "$PGDATA" -U postgres --pwfile=/tmp/pwfile --auth-local=peer \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --data-checksums >/dev/null
  rm -f /tmp/pwfile
fi
# Written at each start, so a volume from before TLS gets these rules too: local sockets by
# OS identity; every network client by SCRAM over TLS, replication included; plaintext TCP
# refused (as harness.config.render.pg_hba renders the cluster's).
printf '%s\n' 'local all all peer' \
  'hostssl all all all scram-sha-256' 'hostssl replication all all scram-sha-256' \
  'hostnossl all all all reject' 'hostnossl replication all all reject' > "$PGDATA/pg_hba.conf"
exec postgres -D "$PGDATA" \
  -c listen_addresses='*' \
  -c unix_socket_directories=/var/run/postgresql \
  -c cluster_name=supabase-source \
  -c wal_level=logical \
  -c max_replication_slots=10 \
  -c max_wal_senders=10 \
  -c max_slot_wal_keep_size=1GB \
  -c shared_buffers=64MB \
  -c password_encryption=scram-sha-256 \
  -c ssl=on \
  -c ssl_cert_file=/etc/gardenlab/tls/tls.crt \
  -c ssl_key_file=/etc/gardenlab/tls/tls.key \
  -c ssl_min_protocol_version=TLSv1.3
