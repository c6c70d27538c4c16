"""pgBackRest's own output, read: `info --output=json` and `verify --output=text`.

Pure parsing, so the gate can read a production repository's answer without the lab's
backup machinery, and the tests can feed recorded output."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from harness.core.errors import BackupError

BackupType = Literal["full", "diff", "incr"]
BACKUP_TYPES: tuple[BackupType, ...] = ("full", "diff", "incr")

# What pgBackRest 2.55 says when the repository's encryption is not the configuration's: a
# plain repository read with a cipher, or an encrypted one read with another passphrase or
# none (then it quotes the ciphertext, which no message should carry on).
CIPHER_MISMATCH = ("cipher header invalid", "key/value found outside of section")
UNDECRYPTABLE = "cannot be decrypted with the configured passphrase (or was never encrypted)"


def cipher_mismatch(output: str) -> bool:
    return any(sign in output for sign in CIPHER_MISMATCH)


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    started: float  # epoch seconds
    stopped: float
    database_bytes: int
    repository_bytes: int

    @classmethod
    def from_info(cls, raw: dict[str, Any]) -> BackupSet:
        return cls(
            raw["label"],
            raw["type"],
            float(raw["timestamp"]["start"]),
            float(raw["timestamp"]["stop"]),
            int(raw["info"]["size"]),
            int(raw["info"]["repository"]["delta"]),
        )


@dataclass(frozen=True)
class RepositoryInfo:
    """What `pgbackrest info` says of the stanza."""

    status_code: int  # 0 ok; pgBackRest's own codes otherwise
    status_message: str
    backups: tuple[BackupSet, ...]
    archive_min: str  # oldest and newest archived WAL segment, "" when none
    archive_max: str

    @classmethod
    def parse(cls, output: str) -> RepositoryInfo:
        stanzas = json.loads(output or "[]")
        if not stanzas:
            return cls(1, "no stanza", (), "", "")
        stanza = stanzas[0]
        archives = stanza.get("archive") or [{}]
        message = str(stanza["status"]["message"])
        if cipher_mismatch(json.dumps(stanza.get("repo", []))):
            message = f"the repository {UNDECRYPTABLE}"
        return cls(
            int(stanza["status"]["code"]),
            message,
            tuple(BackupSet.from_info(b) for b in stanza.get("backup", [])),
            str(archives[-1].get("min") or ""),
            str(archives[-1].get("max") or ""),
        )

    def backup_before(self, target: datetime) -> BackupSet:
        """The newest backup that ended before the target: recovery starts from it."""
        return max(
            (b for b in self.backups if b.stopped <= target.timestamp()), key=lambda b: b.stopped
        )

    def check_target(self, target: datetime | None, now: float | None = None) -> None:
        """Refuse a restore this repository cannot serve, before anything is touched."""
        if self.status_code != 0 or not self.backups:
            raise BackupError(
                f"the backup repository has no usable backup ({self.status_message})",
                "take one with `make backup`; `harness backups` lists what there is",
            )
        if target is None:
            return
        first = min(b.stopped for b in self.backups)
        if target.timestamp() < first:
            raise BackupError(
                f"no backup ends before {target.isoformat()}: the oldest ended at "
                f"{datetime.fromtimestamp(first, UTC).isoformat()}",
                "pick a later time; `harness backups` lists the backups",
            )
        if target.timestamp() > (now or time.time()):
            raise BackupError(
                f"{target.isoformat()} is in the future", "omit --time to restore the latest state"
            )


VERIFIED_BACKUP = re.compile(r"backup: (?P<label>\S+), status: (?P<status>\w+)")
VERIFIED_ARCHIVE = re.compile(
    r"archiveId: (?P<id>\S+), total WAL checked: (?P<checked>\d+), total valid WAL: (?P<valid>\d+)"
)


@dataclass(frozen=True)
class Verification:
    """`pgbackrest verify --output=text`: it exits 0 whatever it found, so read what it says."""

    backups: dict[str, str]  # label -> valid, invalid, ...
    archive_problems: list[str]

    @classmethod
    def parse(cls, text: str) -> Verification:
        backups = {m["label"]: m["status"] for m in VERIFIED_BACKUP.finditer(text)}
        archive = [
            f"archive {m['id']}: {int(m['checked']) - int(m['valid'])} of {m['checked']} WAL "
            "segments invalid"
            for m in VERIFIED_ARCHIVE.finditer(text)
            if m["checked"] != m["valid"]
        ]
        return cls(backups, archive)

    def problems(self, label: str) -> list[str]:
        """What stops a restore from this backup and the archive after it."""
        status = self.backups.get(label, "not verified")
        found = [] if status == "valid" else [f"backup {label} is {status}"]
        return found + self.archive_problems
