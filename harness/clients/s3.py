"""A small S3 client: make a bucket, list it, read and write objects, signed with AWS
Signature Version 4 on path-style URLs, verifying the server against a CA file.

The lab reads its backup repository through it as any S3 client would (the security suite's
cipher check, a corrupted object for the restore's refusal), independently of pgBackRest, which
writes it; `up` makes the bucket with it. Only what those need: no multipart; a 5xx is
retried, as S3 asks of its clients."""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import httpx

from harness.core.errors import BackupError

SERVICE = "s3"
ALGORITHM = "AWS4-HMAC-SHA256"
RETRIES = (0.2, 0.5, 1.0)  # s before each new attempt after a 5xx
# What a bucket that exists already answers to its creation: it is there, which is the point.
BUCKET_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_query(query: str) -> str:
    """Each name and value URI-encoded once, sorted: the query as Signature V4 signs it."""
    pairs = []
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def signed_headers(
    method: str,
    url: str,
    payload: bytes,
    region: str,
    access_key: str,
    secret_key: str,
    now: datetime,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The headers of a Signature V4 request (host, date, payload hash, authorization)."""
    parts = urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {
        "host": parts.netloc,
        "x-amz-content-sha256": hashlib.sha256(payload).hexdigest(),
        "x-amz-date": stamp,
        **{k.lower(): v for k, v in (extra or {}).items()},
    }
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parts.path or "/",  # S3 signs the path as sent, encoded once
            canonical_query(parts.query),
            *(f"{k}:{headers[k].strip()}" for k in sorted(headers)),
            "",
            names,
            headers["x-amz-content-sha256"],
        ]
    )
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    for part in (region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    return headers


def plain(root: ET.Element) -> ET.Element:
    """The tree with namespaces dropped: servers differ in the one they declare."""
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root


def error_code(body: bytes) -> str:
    """S3's <Error><Code>, or "" when the body is not an S3 error."""
    try:
        return ET.fromstring(body).findtext("Code") or ""
    except ET.ParseError:
        return ""


class S3Client:
    """Path-style requests to one endpoint (https://host:port), TLS verified against `ca_file`."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        access_key: str,
        secret_key: str,
        ca_file: str | None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self.http = httpx.Client(verify=verify, timeout=timeout, transport=transport)

    def __enter__(self) -> S3Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = f"{self.endpoint}{quote(path, safe='/-_.~')}" + (f"?{query}" if query else "")
        for attempt in range(len(RETRIES) + 1):
            if attempt:
                time.sleep(RETRIES[attempt - 1])
            signed = signed_headers(
                method,
                url,
                body,
                self.region,
                self.access_key,
                self.secret_key,
                datetime.now(UTC),
                headers,
            )
            try:
                response = self.http.request(method, url, content=body, headers=signed)
            except httpx.HTTPError as exc:
                raise BackupError(
                    f"cannot reach the S3 endpoint {self.endpoint}: {exc}",
                    "is the S3 server up? `harness status`, `make logs SERVICE=s3`",
                ) from exc
            if response.status_code < 500:
                break
        return response

    def check(self, response: httpx.Response, what: str, allowed: tuple[str, ...] = ()) -> None:
        if response.is_success or error_code(response.content) in allowed:
            return
        code = error_code(response.content) or f"HTTP {response.status_code}"
        raise BackupError(
            f"S3 refused to {what}: {code}",
            "check the endpoint, the bucket and the credentials (S3_ACCESS_KEY, S3_SECRET_KEY)",
        )

    def create_bucket(self, bucket: str) -> None:
        """Make the bucket; one that is there already is left as it is."""
        self.check(self.request("PUT", f"/{bucket}"), f"create bucket {bucket}", BUCKET_EXISTS)

    def list(self, bucket: str, prefix: str = "") -> list[S3Object]:
        """Every object under `prefix` (ListObjectsV2, page after page)."""
        found: list[S3Object] = []
        token = ""
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            response = self.request("GET", f"/{bucket}", query)
            self.check(response, f"list bucket {bucket}")
            root = plain(ET.fromstring(response.content))
            found += [
                S3Object(item.findtext("Key", ""), int(item.findtext("Size", "0")))
                for item in root.iter("Contents")
            ]
            token = root.findtext("NextContinuationToken") or ""
            if root.findtext("IsTruncated") != "true" or not token:
                return found

    def read(self, bucket: str, key: str, length: int | None = None) -> bytes:
        """An object's bytes, or only its first `length`."""
        headers = {"range": f"bytes=0-{length - 1}"} if length else None
        response = self.request("GET", f"/{bucket}/{key}", headers=headers)
        self.check(response, f"read {key}")
        return response.content[:length] if length else response.content

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.check(self.request("PUT", f"/{bucket}/{key}", body=data), f"write {key}")
