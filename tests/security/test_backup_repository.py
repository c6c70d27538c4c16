"""The backup repository holds no row in the clear: a row with a random marker is written, its
WAL archived (lz4 keeps such a marker as a literal, so an unencrypted repository shows it),
and no file of the repository contains the marker."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from harness.backup.repository import archive_now
from harness.config.render import REPO_PATH
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(180)]


def test_an_archived_rows_text_is_in_no_repository_file(stack: Stack) -> None:
    marker = f"gardenlab-marker-{secrets.token_hex(24)}"
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("create table if not exists security_marker (note text)")
        conn.execute("insert into security_marker values (%s)", (marker,))
    try:
        archive_now(stack)
        node = stack.leader()
        files = stack.execute(node, ["find", REPO_PATH, "-type", "f"], "postgres").splitlines()
        assert any("/archive/" in f for f in files), "no archived WAL in the repository"
        found = stack.execute(
            node, ["sh", "-c", f"grep -rlF {marker} {REPO_PATH} || true"], "postgres"
        )
        assert found == "", f"in the clear in: {found}"
    finally:
        with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
            conn.execute("drop table security_marker")
