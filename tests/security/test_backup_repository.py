"""The backup repository holds nothing in the clear: every file pgBackRest wrote into it, the
WAL just archived included, begins with the header of its aes-256-cbc cipher. Searching for a
row's text would not do: the default gz compression leaves no literal text to find, so such a
search passes on an unencrypted repository too."""

from __future__ import annotations

import pytest

from harness.backup.repository import archive_now
from harness.config.render import REPO_PATH
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(180)]

CIPHER_HEADER = "Salted__"  # OpenSSL's salted-cipher header, which pgBackRest writes first
PLAIN = (
    f"find {REPO_PATH} -type f | while read -r f; do "
    f'[ "$(head -c 8 "$f")" = "{CIPHER_HEADER}" ] || echo "$f"; done'
)


def test_every_repository_file_is_encrypted(stack: Stack) -> None:
    archive_now(stack)
    node = stack.leader()
    files = stack.execute(node, ["find", REPO_PATH, "-type", "f"], "postgres").splitlines()
    assert any("/archive/" in f for f in files), "no archived WAL in the repository"
    assert any(f.endswith("archive.info") for f in files), "no archive.info in the repository"
    plain = stack.execute(node, ["sh", "-c", PLAIN], "postgres").split()
    assert plain == [], f"not encrypted: {plain[:5]}"
