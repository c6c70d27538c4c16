from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from harness.core.errors import ConfigError
from harness.lab.project import Lab, resolve_ports
from harness.lab.secrets import (
    API_KEYS,
    SECRET_KEYS,
    api_key_valid,
    ensure_secrets,
    read_env_file,
)


def test_default_ports_follow_the_conventions() -> None:
    assert resolve_ports({}) == {
        "rw": 5000,
        "ro": 5001,
        "pooler": 6432,
        "stats": 7000,
        "pg1": 8008,
        "pg2": 8009,
        "pg3": 8010,
        "pg4": 8011,
        "pg5": 8012,
        "faultproxy": 8474,
        "csv-import": 8090,
        "proxied-rw": 5010,
        "proxied-ro": 5011,
        "proxied-pooler": 6442,
        "prometheus": 9090,
        "alertmanager": 9093,
        "alert-log": 9095,
        "s3": 9000,
        "kong": 8000,
        "meta": 8080,
        "studio": 3000,
        "source": 5440,
        "endpoint": 6433,
    }


def test_a_port_moves_by_its_variable() -> None:
    assert resolve_ports({"GARDENLAB_RW_PORT": "15000"})["rw"] == 15000


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_a_bad_port_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="GARDENLAB_RO_PORT"):
        resolve_ports({"GARDENLAB_RO_PORT": value})


def test_two_endpoints_on_one_port_are_refused() -> None:
    with pytest.raises(ConfigError, match="rw and ro"):
        resolve_ports({"GARDENLAB_RO_PORT": "5000"})


def test_dsn_without_secrets_says_how_to_get_them(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, settings={})
    with pytest.raises(ConfigError, match="POSTGRES_PASSWORD") as info:
        lab.dsn("rw")
    assert "make dev-up" in info.value.hint


def test_dsn_points_at_loopback(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, settings={"POSTGRES_PASSWORD": "pw", "GARDENLAB_RO_PORT": "15001"})
    assert "host=127.0.0.1 port=15001" in lab.dsn("ro")
    with pytest.raises(ConfigError, match="unknown endpoint"):
        lab.dsn("primary")


def test_secrets_are_generated_private_and_kept(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    assert ensure_secrets(env) == [*SECRET_KEYS, *API_KEYS]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    first = read_env_file(env)
    assert all(len(first[k]) >= 24 for k in SECRET_KEYS)
    assert ensure_secrets(env) == []
    assert read_env_file(env) == first


def test_missing_secrets_are_added_next_to_user_settings(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GARDENLAB_RW_PORT=15000\nPOSTGRES_PASSWORD='mine'")
    added = ensure_secrets(env)
    assert "POSTGRES_PASSWORD" not in added
    assert added[:3] == ["REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD", "CRM_APP_PASSWORD"]
    values = read_env_file(env)
    assert values["POSTGRES_PASSWORD"] == "mine"
    assert values["GARDENLAB_RW_PORT"] == "15000"


def test_api_keys_are_jwts_for_their_role_signed_with_the_lab_secret(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    ensure_secrets(env)
    values = read_env_file(env)
    for key, role in API_KEYS.items():
        token = values[key]
        assert api_key_valid(token, values["JWT_SECRET"])
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["role"] == role and claims["exp"] > claims["iat"]
    assert not api_key_valid(values["ANON_KEY"], "another secret")


def test_api_keys_follow_a_changed_jwt_secret(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    ensure_secrets(env)
    old = read_env_file(env)
    env.write_text(env.read_text().replace(old["JWT_SECRET"], "a-new-secret-of-the-operator"))
    assert sorted(ensure_secrets(env)) == ["ANON_KEY", "SERVICE_ROLE_KEY"]
    new = read_env_file(env)
    assert api_key_valid(new["SERVICE_ROLE_KEY"], "a-new-secret-of-the-operator")
    assert new["POSTGRES_PASSWORD"] == old["POSTGRES_PASSWORD"]
