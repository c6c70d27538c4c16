"""Alertmanager's webhook receiver: every firing and resolved notification, kept in order.

Alertmanager forgets a resolved alert (it vanishes from /api/v2/alerts); this log does not, so
a scenario can tell when each alert was notified and when its resolution was. A leaf: it
imports nothing from the harness, and runs in the fault proxy's image (Debian's python3).
"""
