"""Talking to the parts: PostgreSQL connection strings and URLs, Patroni's REST API, HAProxy's
stats, the fault proxy's API, pgBackRest's output, and the container runtime. Each client is
small and typed, and takes its transport or runtime as a seam so tests can fake it."""
