"""A request body to a file in the spool, read in chunks: hashed, checked for UTF-8 and
binary data, its lines counted, its header read. Memory stays flat whatever the size; a
refused file leaves nothing behind."""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path

from csvimport.errors import Refused
from csvimport.rows import Header, read_header

CHUNK = 64 * 1024
ENCODING = "utf-8-sig"  # UTF-8, with or without the BOM spreadsheet programs write
# Control bytes no text export holds (tab, newlines, form feed and escape aside): binary data.
BINARY = bytes([*range(0, 9), 11, *range(14, 27), *range(28, 32)])


def too_large(limit: int) -> Refused:
    return Refused(
        413,
        "too_large",
        f"the file is larger than the limit of {limit:,} bytes",
        "split it, or raise CSV_IMPORT_MAX_BYTES (GARDENLAB_CSV_IMPORT_MAX_BYTES in .env)",
    )


def body_chunks(
    stream: BufferedIOBase, length: int | None, chunked: bool, limit: int
) -> Iterator[bytes]:
    """The body as chunks, by Content-Length or HTTP/1.1 chunked transfer coding."""
    if not chunked:
        assert length is not None
        if length > limit:
            raise too_large(limit)
        left = length
        while left:
            data = stream.read(min(CHUNK, left))
            if not data:
                raise Refused(400, "truncated", f"the body ended {left:,} bytes early")
            left -= len(data)
            yield data
        return
    total = 0
    while True:
        size_line = stream.readline(1024).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise Refused(400, "bad_chunk", "malformed chunked body") from None
        if size == 0:
            while stream.readline(1024).strip():  # trailers
                pass
            return
        total += size
        if total > limit:
            raise too_large(limit)
        left = size
        while left:
            data = stream.read(min(CHUNK, left))
            if not data:
                raise Refused(400, "truncated", "the body ended inside a chunk")
            left -= len(data)
            yield data
        stream.readline(16)  # the CRLF after each chunk


@dataclass(frozen=True)
class Received:
    path: Path  # in the spool, named by agency and content hash
    sha256: str
    size: int
    lines: int  # newline-separated lines, the header included: progress, not a row count
    header: Header


def spool_path(spool: Path, agency_id: int, sha256: str) -> Path:
    return spool / f"{agency_id}-{sha256}.csv"


def receive(chunks: Iterator[bytes], spool: Path, agency_id: int) -> Received:
    """Write the chunks to the spool; refuse what is not a UTF-8 CSV file with known columns."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(ENCODING)("strict")
    size = lines = 0
    last = b""
    fd, name = tempfile.mkstemp(dir=spool, prefix=".receiving-")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                if len(chunk.translate(None, BINARY)) != len(chunk):
                    at = next(i for i, b in enumerate(chunk) if b in BINARY)
                    raise Refused(
                        400,
                        "not_csv",
                        f"not a CSV file: binary data at byte {size + at:,}",
                        "send the agency's export as text (CSV, UTF-8)",
                    )
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise Refused(
                        400,
                        "encoding",
                        f"the file is not UTF-8: byte 0x{chunk[exc.start]:02x} at offset "
                        f"{size + exc.start:,} cannot be decoded",
                        'save it as UTF-8 ("CSV UTF-8" in spreadsheet programs)',
                    ) from None
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise Refused(
                    400, "encoding", "the file is not UTF-8: it ends inside a character"
                ) from None
        if last and last != b"\n":
            lines += 1
        header = first_records(temp)
        sha = digest.hexdigest()
        final = spool_path(spool, agency_id, sha)
        temp.replace(final)  # same content, same name: a retried upload lands on itself
        return Received(final, sha, size, lines, header)
    finally:
        temp.unlink(missing_ok=True)


def first_records(path: Path) -> Header:
    """The header, and proof that a row follows it."""
    with path.open(encoding=ENCODING, newline="") as text:
        reader = csv.reader(text)
        try:
            header = next((r for r in reader if r), None)
            if header is None:
                raise Refused(400, "empty", "the file is empty", "send a header row and rows")
            parsed = read_header(header)
            if next((r for r in reader if r), None) is None:
                raise Refused(400, "empty", "the file has a header but no rows")
        except csv.Error as exc:
            raise Refused(
                400, "not_csv", f"not a CSV file: {exc} (line {reader.line_num})"
            ) from None
    return parsed
