"""The deployment rehearsed: the rendered playbook on three bare Debian 13 containers brings
up a cluster that passes the gate's read-only checks. The servers are always removed."""

from __future__ import annotations

import pytest

from harness.promotion.rehearse import rehearse
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def test_the_rendered_playbook_brings_up_a_healthy_cluster_on_bare_servers(stack: Stack) -> None:
    report = rehearse(stack.lab, say=print)  # the stack fixture built the lab's images
    assert report.checks is not None
    failed = [c for c in report.checks.checks if c.passed is False]
    assert report.passed, failed
    print(f"rehearsal: {report.seconds}")
