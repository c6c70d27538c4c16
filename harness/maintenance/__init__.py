"""Planned maintenance that clients behind PgBouncer do not notice: switchover, rolling
restart, replica rebuild."""
