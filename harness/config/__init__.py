"""Configuration rendered from one source for the lab and for servers: Patroni, HAProxy,
PgBouncer, pgBackRest and the fault proxy from a preset and a Site; inventories; the
per-host bundle and its playbook."""
