"""The backup repository holds nothing in the clear: every object pgBackRest wrote into the
S3 bucket, the WAL just archived included, begins with the header of its aes-256-cbc cipher.
The objects are read through the S3 API, as anyone holding the bucket's credentials would read
them. Searching for a row's text would not do: the default compression leaves no literal text
to find, so such a search passes on an unencrypted repository too."""

from __future__ import annotations

import pytest

from harness.backup.repository import archive_now
from harness.config.render import S3_REPO_PATH
from harness.lab.topology import S3_BUCKET
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(180)]

CIPHER_HEADER = b"Salted__"  # OpenSSL's salted-cipher header, which pgBackRest writes first


def test_every_repository_object_is_encrypted(stack: Stack) -> None:
    archive_now(stack)
    with stack.lab.s3() as s3:
        objects = s3.list(S3_BUCKET, S3_REPO_PATH.strip("/") + "/")
        keys = [o.key for o in objects]
        assert any("/archive/" in k and k.endswith(".lz4") for k in keys), "no archived WAL"
        assert any(k.endswith("archive.info") for k in keys), "no archive.info in the bucket"
        plain = [k for k in keys if s3.read(S3_BUCKET, k, len(CIPHER_HEADER)) != CIPHER_HEADER]
    assert plain == [], f"not encrypted: {plain[:5]}"
