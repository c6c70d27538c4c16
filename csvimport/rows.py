"""What an agency's CSV holds: the header's columns, and each row checked on its own.

Checks that need the whole file (a duplicate inside it) run in the database at the merge,
so the service's memory does not grow with the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from csvimport.errors import Refused

REQUIRED = ("name", "phone", "email", "status", "source")
OPTIONAL = ("created_at", "score")
COLUMNS = (*REQUIRED, *OPTIONAL)
STATUSES = frozenset({"new", "contacted", "qualified", "won", "lost"})
DEFAULT_SOURCE = "csv_import"

PHONE = re.compile(r"\+?\d{10,15}")
PHONE_PUNCTUATION = str.maketrans("", "", " -().")
EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}")

# Why a row is rejected; a duplicate's reason names the line it repeats.
BAD_PHONE = "bad phone"
BAD_EMAIL = "bad e-mail"
UNKNOWN_STATUS = "unknown status"
MISSING_NAME = "missing name"
BAD_CREATED_AT = "bad created_at"
BAD_SCORE = "bad score"


@dataclass(frozen=True)
class Header:
    """Where each known column sits in a row."""

    index: dict[str, int]
    width: int

    def field(self, fields: list[str], column: str) -> str:
        at = self.index.get(column)
        return fields[at].strip() if at is not None else ""


def read_header(fields: list[str]) -> Header:
    """The header row; refuses unknown, missing or repeated columns, naming them."""
    names = [f.strip().lower() for f in fields]
    expected = f"expected a header row with {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        raise Refused(400, "unknown_column", f"unknown column(s): {shown}", expected)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise Refused(400, "missing_column", f"missing column(s): {', '.join(missing)}", expected)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise Refused(400, "repeated_column", f"repeated column(s): {', '.join(repeated)}")
    return Header({n: i for i, n in enumerate(names)}, len(names))


@dataclass(frozen=True)
class Lead:
    """A row that passed every check of its own, as staged."""

    line: int
    full_name: str
    phone: str | None
    email: str | None
    phone_key: str | None  # digits only: "+7 912 345-67-89" and "79123456789" are one phone
    email_key: str | None  # lower case
    status: str
    source: str
    score: int | None
    created_at: datetime | None


def phone_key(phone: str) -> str | None:
    """Digits of a valid phone (a leading + allowed, spaces, dashes, dots, brackets ignored)."""
    compact = phone.translate(PHONE_PUNCTUATION)
    return compact.lstrip("+") if PHONE.fullmatch(compact) else None


def check_row(line: int, fields: list[str], header: Header) -> Lead | str:
    """The row as a lead, or the reason it is rejected (the first check that fails)."""
    if len(fields) != header.width:
        return f"expected {header.width} fields, found {len(fields)}"
    name = header.field(fields, "name")
    if not name:
        return MISSING_NAME
    phone = header.field(fields, "phone")
    key = phone_key(phone) if phone else None
    if phone and key is None:
        return BAD_PHONE
    email = header.field(fields, "email")
    if email and not EMAIL.fullmatch(email):
        return BAD_EMAIL
    status = header.field(fields, "status").lower()
    if status not in STATUSES:
        return UNKNOWN_STATUS
    created_at = None
    if raw := header.field(fields, "created_at"):
        try:
            created_at = datetime.fromisoformat(raw)
        except ValueError:
            return BAD_CREATED_AT
    score = None
    if raw := header.field(fields, "score"):
        if not raw.isdigit() or int(raw) > 100:
            return BAD_SCORE
        score = int(raw)
    return Lead(
        line=line,
        full_name=name,
        phone=phone or None,
        email=email or None,
        phone_key=key,
        email_key=email.lower() if email else None,
        status=status,
        source=header.field(fields, "source") or DEFAULT_SOURCE,
        score=score,
        created_at=created_at,
    )
