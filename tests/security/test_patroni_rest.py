"""Patroni's REST API on every node's published port: the methods that change the cluster
need the `patroni` user's password from .env; the GETs HAProxy's checks use need none. Each
request body is one Patroni would refuse even if it got through (no such member, no such
role, the leader asked to reinitialise itself), so a missing authentication fails the test
without moving the cluster."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.clients.patroni import verifying
from harness.lab.topology import NODES
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(120)]
NOBODY = "no-such-member"
UNSAFE: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("POST", "/switchover", {"leader": NOBODY, "candidate": NOBODY}),
    ("POST", "/failover", {"candidate": NOBODY}),
    ("DELETE", "/switchover", None),
    ("POST", "/restart", {"role": NOBODY}),
    ("DELETE", "/restart", None),
    ("POST", "/reload", None),
    ("PATCH", "/config", {}),
)


def send(stack: Stack, node: str, method: str, path: str, body: Any, **auth: Any) -> int:
    with httpx.Client(timeout=5, verify=verifying(stack.lab.rest_ca), **auth) as http:
        return http.request(method, stack.lab.rest_url(node, path), json=body).status_code


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize(("method", "path", "body"), UNSAFE, ids=[f"{m} {p}" for m, p, _ in UNSAFE])
def test_an_unsafe_method_without_credentials_is_refused(
    stack: Stack, node: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert send(stack, node, method, path, body) == 401
    wrong = ("patroni", "not-" + stack.lab.secret("PATRONI_RESTAPI_PASSWORD"))
    assert send(stack, node, method, path, body, auth=wrong) == 401


def test_reinitialise_without_credentials_is_refused(stack: Stack) -> None:
    """Asked of the leader, which refuses to reinitialise itself once authenticated."""
    leader = stack.leader()
    assert send(stack, leader, "POST", "/reinitialize", {"force": False}) == 401
    right = ("patroni", stack.lab.secret("PATRONI_RESTAPI_PASSWORD"))
    assert send(stack, leader, "POST", "/reinitialize", {"force": False}, auth=right) == 503


@pytest.mark.parametrize("node", NODES)
def test_the_checks_gets_need_no_credentials_and_the_password_is_accepted(
    stack: Stack, node: str
) -> None:
    assert send(stack, node, "GET", "/health", None) == 200
    right = ("patroni", stack.lab.secret("PATRONI_RESTAPI_PASSWORD"))
    # past authentication: Patroni itself refuses the empty patch
    assert send(stack, node, "PATCH", "/config", {}, auth=right) == 400
