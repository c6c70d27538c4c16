"""The Supabase services on the lab (Compose profile `supabase`): start what can run here,
say exactly what cannot and why, and tell clients where to go and which keys to send.

Upstream publishes these services only as container images; where no registry answers,
an image that is not already on the machine cannot be had, so `up` runs the rest and
names the missing ones. postgres-meta is built here from npm (compose/images/meta).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from harness.core.errors import CommandError
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.lab.topology import SUPABASE
from harness.stack.lifecycle import Stack
from harness.stack.readiness import HttpOk, wait_for

META_READY_TIMEOUT = 90.0


@dataclass(frozen=True)
class ProfileService:
    name: str
    image: str
    built_here: bool  # built from compose/images/, so always available


def profile_services(stack: Stack) -> list[ProfileService]:
    """The profile's services as Compose resolves them: one source, the compose file."""
    config = stack.compose([SUPABASE]).config()
    services = config.get("services", {})
    return [
        ProfileService(name, spec["image"], "build" in spec)
        for name, spec in sorted(services.items())
        if SUPABASE in (spec.get("profiles") or [])
    ]


def image_unavailable(stack: Stack, image: str) -> str:
    """Why an image cannot be had ("" when it is here or could be pulled)."""
    if stack.runtime.image_exists(image):
        return ""
    try:
        stack.runtime.pull(image)
    except CommandError as exc:
        detail = (exc.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"image {image} is not on this machine and cannot be pulled ({detail})"
    return ""


@dataclass
class SupabaseReport:
    started: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # service -> why it did not start


def start_supabase(stack: Stack, say: Say = print) -> SupabaseReport:
    """Build what is built here, start every service whose image is available, wait for meta."""
    report = SupabaseReport()
    services = profile_services(stack)
    stack.build(lambda _: None, [s.name for s in services if s.built_here], [SUPABASE])
    for service in services:
        why = "" if service.built_here else image_unavailable(stack, service.image)
        if why:
            report.missing[service.name] = why
        else:
            report.started.append(service.name)
    if report.started:
        stack.compose([SUPABASE]).up(report.started, dependencies=False)
    if "meta" in report.started:
        meta = HttpOk("postgres-meta answers /health", stack.lab.url("meta", "/health"))
        wait_for([meta], META_READY_TIMEOUT, log_tail=stack.log_tail)
    return report


def supabase_states(stack: Stack) -> dict[str, str]:
    """Service -> container state, for the profile's services that have a container."""
    names = {s.name for s in profile_services(stack)}
    return {c.service: c.status for c in stack.containers() if c.service in names}


def client_settings(lab: Lab) -> dict[str, str]:
    """What a Supabase client of this lab needs: the URLs and the keys."""
    return {
        "API (Kong)": lab.url("kong"),
        "Studio": lab.url("studio"),
        "postgres-meta": lab.url("meta"),
        "ANON_KEY": lab.secret("ANON_KEY"),
        "SERVICE_ROLE_KEY": lab.secret("SERVICE_ROLE_KEY"),
        "JWT_SECRET": lab.secret("JWT_SECRET"),
    }


def settings_json(lab: Lab, stack: Stack) -> str:
    return json.dumps({"services": supabase_states(stack), **client_settings(lab)}, indent=2)
