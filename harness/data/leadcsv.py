"""Agency CSV exports for the import service's tests, benchmark and chaos checks: rows with a
known fate, so a check can say which line must be in leads once and which rejected, and why."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

HEADER = "name,phone,email,status,source,created_at\n"
STATUSES = ("new", "contacted", "qualified", "won", "lost")
SOURCES = ("website", "whatsapp", "telegram", "referral", "ads")
NAMES = ("Ivanova Anna", "Petrov Pavel", "Smirnova Olga", "Kuznetsov Ilya", "Sokolova Maria")


@dataclass
class LeadFile:
    path: Path
    rows: int
    valid: list[int] = field(default_factory=list)  # lines that must land in leads once
    rejected: dict[int, str] = field(default_factory=dict)  # line -> reason


def write_lead_csv(path: Path, rows: int, *, seed: int = 1, bad_every: int = 0) -> LeadFile:
    """`rows` leads; with `bad_every` N, every Nth row is rejected for one of the four reasons
    (bad phone, bad e-mail, unknown status, a duplicate of an earlier row's phone).
    The seed goes into every e-mail, so files of different seeds are different imports."""
    rng = random.Random(seed)
    made = LeadFile(path, rows)
    first_valid: tuple[int, str] | None = None  # (line, phone) a duplicate repeats
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            line = i + 2
            digits = f"{seed % 100:02d}{i:08d}"
            phone = f"+7 9{digits[:2]} {digits[2:5]}-{digits[5:7]}-{digits[7:]}"
            email = f"lead{i}.s{seed}@example.ru"
            status = STATUSES[i % len(STATUSES)]
            kind = (i // bad_every) % 4 if bad_every and i % bad_every == bad_every - 1 else -1
            if kind == 0:
                phone, made.rejected[line] = "12-34", "bad phone"
            elif kind == 1:
                email, made.rejected[line] = "not-an-address", "bad e-mail"
            elif kind == 2:
                status, made.rejected[line] = "maybe", "unknown status"
            elif kind == 3 and first_valid is not None:
                phone, made.rejected[line] = first_valid[1], f"duplicate of line {first_valid[0]}"
            else:
                made.valid.append(line)
                first_valid = first_valid or (line, phone)
            day = rng.randrange(1, 28)
            out.write(
                f"{NAMES[i % len(NAMES)]} {i},{phone},{email},{status},"
                f"{SOURCES[i % len(SOURCES)]},2026-03-{day:02d}T10:00:00+03:00\n"
            )
    return made
