"""The CRM's CSV import service: leads from an agency's CSV export, each valid row exactly once.

A leaf: it imports nothing of the harness, and its image needs only Debian's python3 and
python3-psycopg. The database is reached through libpq's PG* environment variables, which
point at the cluster's endpoints (HAProxy's rw port or PgBouncer), as the application's are.
"""
