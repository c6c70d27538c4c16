"""etcd's client and peer ports from inside the network (neither is published): a request done
right (TLS 1.3, verifying the member's certificate, presenting a node's) is answered; plaintext,
a client without a certificate and a client offering TLS 1.2 at most get no answer from etcd.
One probe run in pg1 tries every way on every member's ports (~1 s)."""

from __future__ import annotations

import json
import re

import pytest

from harness.lab.tls import LAB_PATHS
from harness.lab.topology import ETCD_CLIENT_PORT, ETCD_MEMBERS, ETCD_PEER_PORT
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(60)]

# Run by pg1's python3: each way of asking GET /version, what came back (an HTTP status or
# the error's class and text), as one JSON object keyed "member:port way".
PROBE = """
import json, ssl, sys, urllib.request
ca, cert, key = sys.argv[1:4]
members, ports = sys.argv[4].split(","), sys.argv[5].split(",")

def context(client_cert, maximum):
    ctx = ssl.create_default_context(cafile=ca)
    # Python 3.13's strict X.509 wants an Authority Key Identifier, which a checkout's
    # certificates issued before the lab added it lack until `harness tls rotate`: etcd's
    # policy is what is probed here, not their age
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if client_cert:
        ctx.load_cert_chain(cert, key)
    ctx.maximum_version = maximum
    return ctx

ways = {
    "right": ("https", context(True, ssl.TLSVersion.TLSv1_3)),
    "plaintext": ("http", None),
    "no-client-cert": ("https", context(False, ssl.TLSVersion.TLSv1_3)),
    "tls12": ("https", context(True, ssl.TLSVersion.TLSv1_2)),
}
out = {}
for member in members:
    for port in ports:
        for way, (scheme, ctx) in ways.items():
            url = f"{scheme}://{member}:{port}/version"
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as response:
                    out[f"{member}:{port} {way}"] = f"{response.status} {response.read()[:80]!r}"
            except urllib.error.HTTPError as e:
                out[f"{member}:{port} {way}"] = f"{e.code} {e.read()[:80]!r}"
            except Exception as e:
                out[f"{member}:{port} {way}"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""
PORTS = (ETCD_CLIENT_PORT, ETCD_PEER_PORT)
TARGETS = [(m, p) for m in ETCD_MEMBERS for p in PORTS]


@pytest.fixture(scope="module")
def answers(stack: Stack) -> dict[str, str]:
    output = stack.execute(
        "pg1",
        [
            "python3",
            "-c",
            PROBE,
            LAB_PATHS.ca_file,
            LAB_PATHS.cert_file,
            LAB_PATHS.key_file,
            ",".join(ETCD_MEMBERS),
            ",".join(str(p) for p in PORTS),
        ],
        user="postgres",
    )
    result: dict[str, str] = json.loads(output)
    return result


@pytest.mark.parametrize(("member", "port"), TARGETS)
def test_etcd_answers_a_verified_tls_13_client_with_a_certificate(
    answers: dict[str, str], member: str, port: int
) -> None:
    assert answers[f"{member}:{port} right"].startswith("200 "), answers


# How each refusal shows: plaintext meets a TLS listener that hangs up (never etcd's answer),
# the handshake ends with TLS 1.3's certificate_required alert, or with protocol_version.
REFUSED = {
    "plaintext": "RemoteDisconnected|Connection reset|^400 ",
    "no-client-cert": "CERTIFICATE_REQUIRED",
    "tls12": "PROTOCOL_VERSION",
}


@pytest.mark.parametrize(("member", "port"), TARGETS)
@pytest.mark.parametrize("way", list(REFUSED))
def test_etcd_refuses_plaintext_a_client_without_a_certificate_and_tls_12(
    answers: dict[str, str], member: str, port: int, way: str
) -> None:
    answer = answers[f"{member}:{port} {way}"]
    assert re.search(REFUSED[way], answer) and "etcdserver" not in answer, answer
