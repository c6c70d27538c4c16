"""The S3 client: Signature V4 as AWS documents it, listing page by page, and S3's refusals
turned into one line with what to check."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from harness.clients.s3 import S3Client, canonical_query, signed_headers
from harness.core.errors import BackupError

# AWS's own worked example ("Signature Calculations for the Authorization Header", GET Object).
AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_SIGNATURE = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_the_signature_is_the_one_aws_documents() -> None:
    headers = signed_headers(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        b"",
        "us-east-1",
        AWS_KEY,
        AWS_SECRET,
        datetime(2013, 5, 24, tzinfo=UTC),
        {"Range": "bytes=0-9"},
    )
    assert headers["authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={AWS_KEY}/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature={AWS_SIGNATURE}"
    )


def test_the_query_is_signed_sorted_and_encoded_once() -> None:
    assert canonical_query("prefix=a%2Fb%20c&list-type=2") == "list-type=2&prefix=a%2Fb%20c"
    assert canonical_query("uploads") == "uploads="


def page(keys: list[str], token: str = "") -> bytes:
    contents = "".join(f"<Contents><Key>{k}</Key><Size>{len(k)}</Size></Contents>" for k in keys)
    more = f"<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
    return (
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{contents}{more if token else '<IsTruncated>false</IsTruncated>'}</ListBucketResult>"
    ).encode()


def client(handler: httpx.MockTransport) -> S3Client:
    return S3Client("https://s3:9000", "fsn1", "key", "secret", None, transport=handler)


def test_listing_follows_the_continuation_token_and_every_request_is_signed() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "continuation-token=t1" in str(request.url):
            return httpx.Response(200, content=page(["repo/b"]))
        return httpx.Response(200, content=page(["repo/a"], "t1"))

    found = client(httpx.MockTransport(answer)).list("bucket", "repo/")
    assert [o.key for o in found] == ["repo/a", "repo/b"]
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in seen)
    assert seen[0].url.path == "/bucket" and seen[0].url.params["prefix"] == "repo/"


def test_a_bucket_that_is_there_is_fine_and_a_refusal_says_what_to_check() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        code = "BucketAlreadyOwnedByYou" if request.method == "PUT" else "SignatureDoesNotMatch"
        return httpx.Response(409 if request.method == "PUT" else 403, content=error(code))

    s3 = client(httpx.MockTransport(answer))
    s3.create_bucket("bucket")
    with pytest.raises(
        BackupError, match="S3 refused to list bucket bucket: SignatureDoesNotMatch"
    ):
        s3.list("bucket")


def error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>no</Message></Error>".encode()


def test_a_read_asks_for_a_range_only_when_told() -> None:
    ranges: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        ranges.append(request.headers.get("range"))
        return httpx.Response(200, content=b"Salted__rest")

    s3 = client(httpx.MockTransport(answer))
    assert s3.read("bucket", "repo/x", 8) == b"Salted__"
    assert s3.read("bucket", "repo/x") == b"Salted__rest"
    assert ranges == ["bytes=0-7", None]


def test_a_server_error_is_retried_and_a_lasting_one_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("harness.clients.s3.time.sleep", lambda _: None)
    answers = [500, 500, 200]

    def answer(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0) if answers else 500
        return httpx.Response(status, content=page(["k"]) if status == 200 else error("Internal"))

    s3 = client(httpx.MockTransport(answer))
    assert [o.key for o in s3.list("bucket")] == ["k"]
    with pytest.raises(BackupError, match="S3 refused to list bucket bucket: Internal"):
        s3.list("bucket")
