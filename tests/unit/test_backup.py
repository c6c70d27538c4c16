"""pgBackRest's info as recorded from the lab, the restore target checks made before anything
is touched, and the bootstrap-from-backup configuration."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from harness.backup.repository import pgbackrest
from harness.clients.pgbackrest import RepositoryInfo, Verification
from harness.config.render import DATA_DIR, RestoreTarget, patroni_config, render_files
from harness.core.errors import BackupError, CommandError
from harness.lab.presets import get_preset
from harness.lab.project import Lab
from harness.lab.topology import NODES
from harness.stack.lifecycle import Stack
from tests.fakes import FakeRuntime

INFO = (Path(__file__).parents[1] / "fixtures" / "pgbackrest_info.json").read_text()


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_info_lists_backups_and_the_archive() -> None:
    info = RepositoryInfo.parse(INFO)
    assert info.status_code == 0
    assert [b.type for b in info.backups] == ["full", "full"]
    assert info.backups[0].database_bytes > info.backups[0].repository_bytes > 0
    assert info.archive_min < info.archive_max


def test_the_newest_backup_before_the_target_is_chosen() -> None:
    info = RepositoryInfo.parse(INFO)
    first, second = sorted(info.backups, key=lambda b: b.stopped)
    assert info.backup_before(at(second.stopped + 1)) == second
    assert info.backup_before(at(second.stopped - 1)) == first


@pytest.mark.parametrize(
    ("info", "target", "says"),
    [
        ("[]", None, "no usable backup"),
        (INFO, at(1_000_000_000), "no backup ends before"),
        (INFO, at(4_000_000_000), "in the future"),
    ],
)
def test_a_restore_the_repository_cannot_serve_is_refused(
    info: str, target: datetime | None, says: str
) -> None:
    with pytest.raises(BackupError, match=says):
        RepositoryInfo.parse(info).check_target(target, now=3_000_000_000)


def test_latest_and_a_recent_time_are_accepted() -> None:
    info = RepositoryInfo.parse(INFO)
    info.check_target(None)
    info.check_target(at(max(b.stopped for b in info.backups) + 60), now=4_000_000_000)


def test_restore_bootstraps_from_the_backup_and_recovers_through_patroni() -> None:
    target = RestoreTarget("2026-11-22 11:30:17.874597+00:00", "20261122-113011F")
    bootstrap = patroni_config(get_preset("fast"), target)["bootstrap"]
    assert bootstrap["method"] == "pgbackrest"
    method = bootstrap["pgbackrest"]
    script = shlex.split(method["command"])[2]  # sh -c SCRIPT, as Patroni splits it
    assert script.startswith(f"mkdir -p -m 700 {DATA_DIR} && exec pgbackrest")
    assert "--type=none" in script and "--set=20261122-113011F" in script
    assert method["recovery_conf"]["recovery_target_time"] == target.time
    assert method["recovery_conf"]["recovery_target_action"] == "promote"
    assert "archive-get" in method["recovery_conf"]["restore_command"]


def test_a_normal_bootstrap_uses_initdb_and_archives_from_the_start() -> None:
    files = render_files(get_preset("fast"))
    config = yaml.safe_load(files["patroni.yml"])
    assert "method" not in config["bootstrap"]
    parameters = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["archive_mode"] == "on"
    assert "archive-push" in parameters["archive_command"]
    conf = files["pgbackrest.conf"]
    for line in (
        "repo1-type=s3",
        "repo1-s3-bucket=gardenlab-backups",
        "repo1-s3-endpoint=s3",
        "repo1-s3-uri-style=path",
        "repo1-storage-verify-tls=y",
        "repo1-storage-ca-file=/etc/gardenlab/tls/ca.crt",
        "repo1-storage-host=faultproxy",
        "repo1-cipher-type=aes-256-cbc",
    ):
        assert line in conf.splitlines(), line
    assert "s3-key" not in conf  # credentials come from the environment, never a file


VERIFY_CORRUPT = """\
stanza: gardenlab
status: error
  archiveId: 17-1, total WAL checked: 9, total valid WAL: 8
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
  backup: 20261122-113001F, status: invalid, total files checked: 1434, total valid files: 1433
    checksum invalid: 1
  backup: 20261122-113011F, status: valid, total files checked: 1434, total valid files: 1434
"""


def test_verify_output_is_read_per_backup_and_for_the_archive() -> None:
    found = Verification.parse(VERIFY_CORRUPT)
    assert found.backups == {"20261122-113001F": "invalid", "20261122-113011F": "valid"}
    assert found.problems("20261122-113011F") == ["archive 17-1: 1 of 9 WAL segments invalid"]
    assert found.problems("20261122-113001F")[0] == "backup 20261122-113001F is invalid"
    assert Verification.parse("").problems("x") == ["backup x is not verified"]


# pgBackRest 2.55's answers when the repository's encryption is not the configuration's,
# recorded from the lab's image (a plain repository read with a cipher; the ciphertext an
# encrypted one quotes when read with another passphrase is shortened here).
PLAIN_READ_ENCRYPTED = """\
ERROR: [095]: unable to load info file '/var/lib/pgbackrest/archive/gardenlab/archive.info':
       CryptoError: cipher header invalid
       HINT: is or was the repo encrypted?
"""
INFO_OTHER_PASSPHRASE = json.dumps(
    [
        {
            "name": "gardenlab",
            "backup": [],
            "archive": [],
            "repo": [
                {
                    "cipher": "aes-256-cbc",
                    "status": {
                        "code": 99,
                        "message": "[FormatError] unable to load info file\nFormatError: "
                        "key/value found outside of section at line 1: Salted__\x8a\x03",
                    },
                }
            ],
            "status": {"code": 99, "message": "other"},
        }
    ]
)


def test_the_repository_is_encrypted_and_its_passphrase_is_in_no_rendered_file() -> None:
    conf = render_files(get_preset("fast"))["pgbackrest.conf"]
    assert "repo1-cipher-type=aes-256-cbc" in conf.splitlines()
    assert "cipher-pass" not in conf


def test_a_repository_encrypted_otherwise_is_one_line_with_what_to_do(tmp_path: Path) -> None:
    def refuse(service: str, command: list[str]) -> str:
        raise CommandError(command, 95, PLAIN_READ_ENCRYPTED)

    runtime = FakeRuntime.with_services(*NODES, on_exec=refuse)
    stack = Stack(Lab(root=tmp_path, settings={"GARDENLAB_PROJECT": "lab-x"}), runtime=runtime)
    with pytest.raises(BackupError) as caught:
        pgbackrest(stack, "stanza-create", node="pg1")
    assert "\n" not in caught.value.message
    assert "lab-x_backups" in caught.value.message and "decrypted" in caught.value.message
    assert "docker volume rm lab-x_backups" in caught.value.hint


def test_info_on_a_repository_encrypted_otherwise_says_so_without_the_ciphertext() -> None:
    info = RepositoryInfo.parse(INFO_OTHER_PASSPHRASE)
    assert info.status_code == 99
    assert "decrypted" in info.status_message and "Salted" not in info.status_message
    with pytest.raises(BackupError, match="decrypted"):
        info.check_target(None)


def test_waiting_wal_says_how_much_and_whether_archiving_fails() -> None:
    from harness.backup.repository import WalWaiting

    assert WalWaiting(0, 0, "").describe() == "WAL waiting in pg_wal: 0 segments (0 MiB)"
    failing = WalWaiting(3, 3 * 2**24, "000000010000000000000007 at 2026-12-03 06:40:00+00")
    assert failing.describe() == (
        "WAL waiting in pg_wal: 3 segments (48 MiB); archiving failing "
        "(last: 000000010000000000000007 at 2026-12-03 06:40:00+00)"
    )
