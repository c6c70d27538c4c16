"""Faults as objects: `inject()`, `heal()`, and a context manager that heals on the way out
whatever happened inside. They act through a `FaultTarget` (the controller), so a test can
drive them against a fake runtime and a fake proxy."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.core.errors import HarnessError

ContainerAction = Literal["kill", "stop", "pause", "restart"]
Direction = Literal["in", "out"]
Stream = Literal["downstream", "upstream"]
STREAMS: tuple[Stream, ...] = ("downstream", "upstream")
# Our chains, and the built-in chain each is hooked into.
CHAINS: dict[Direction, tuple[str, str]] = {
    "in": ("GARDENLAB_IN", "INPUT"),
    "out": ("GARDENLAB_OUT", "OUTPUT"),
}
Rule = tuple[Direction, tuple[str, ...]]  # a DROP rule: its direction and match arguments


class AlreadyInjected(HarnessError):
    """The same fault is in place already; nothing was changed."""


class FaultTarget(Protocol):
    """What faults act on: the controller of one stack."""

    def act(self, action: ContainerAction | Literal["unpause", "start"], service: str) -> None: ...

    def container_state(self, service: str) -> tuple[bool, bool]: ...  # (running, paused)

    def add_rules(self, service: str, rules: list[Rule]) -> None: ...

    def delete_rules(self, service: str, rules: list[Rule]) -> None: ...

    def proxy_request(
        self, method: str, path: str, body: Any = None, missing_ok: bool = False
    ) -> Any: ...

    def switchover(self, leader: str, candidate: str) -> None: ...


class Fault(ABC):
    """Something broken on purpose; `with fault:` guarantees the heal."""

    description: str

    @abstractmethod
    def inject(self) -> None: ...

    @abstractmethod
    def heal(self) -> None: ...

    def apply(self) -> None:
        """Inject; a fault that fails half-way is healed, so nothing is left half-made."""
        try:
            self.inject()
        except AlreadyInjected:
            raise
        except BaseException:
            self.heal()
            raise

    def __enter__(self) -> Fault:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal()


@dataclass
class ContainerFault(Fault):
    target: FaultTarget
    service: str
    action: ContainerAction

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"{self.action} {self.service}"

    def inject(self) -> None:
        self.target.act(self.action, self.service)

    def heal(self) -> None:
        running, paused = self.target.container_state(self.service)  # as it is now
        if paused:
            self.target.act("unpause", self.service)
        elif not running:
            self.target.act("start", self.service)


@dataclass
class IptablesFault(Fault):
    """DROP rules in one node's own chains; healing deletes exactly these rules."""

    target: FaultTarget
    service: str
    rules: list[Rule]
    description: str

    def inject(self) -> None:
        self.target.add_rules(self.service, self.rules)

    def heal(self) -> None:
        self.target.delete_rules(self.service, self.rules)


@dataclass
class ToxicFault(Fault):
    target: FaultTarget
    link: str
    toxic: dict[str, Any]

    @property
    def description(self) -> str:  # type: ignore[override]
        attrs = ", ".join(f"{k}={v}" for k, v in self.toxic["attributes"].items())
        return f"{self.toxic['type']} on {self.link} ({self.toxic['stream']}: {attrs})"

    def inject(self) -> None:
        path = f"/proxies/{self.link}/toxics"
        if self.target.proxy_request("GET", f"{path}/{self.toxic['name']}", missing_ok=True):
            raise AlreadyInjected(
                f"{self.toxic['type']} is already on {self.link}", "`harness fault heal` first"
            )
        self.target.proxy_request("POST", path, self.toxic)

    def heal(self) -> None:
        self.target.proxy_request(
            "DELETE", f"/proxies/{self.link}/toxics/{self.toxic['name']}", missing_ok=True
        )


@dataclass
class LinkDown(Fault):
    target: FaultTarget
    link: str

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"link {self.link} down"

    def inject(self) -> None:
        self.target.proxy_request("PATCH", f"/proxies/{self.link}", {"enabled": False})

    def heal(self) -> None:
        self.target.proxy_request("PATCH", f"/proxies/{self.link}", {"enabled": True})


@dataclass
class Together(Fault):
    """Several faults at once; healed in reverse order."""

    parts: list[Fault]

    @property
    def description(self) -> str:  # type: ignore[override]
        return " + ".join(part.description for part in self.parts)

    def inject(self) -> None:
        for part in self.parts:
            part.inject()

    def heal(self) -> None:
        for part in reversed(self.parts):
            part.heal()


@dataclass
class Stages(Fault):
    """Faults one after another: each held for its seconds, then healed as the next is
    injected; the last stays until the heal. A thread moves the stages on, so the hold runs."""

    stages: list[tuple[Fault, float]]
    current: Fault | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    mover: threading.Thread | None = None

    @property
    def description(self) -> str:  # type: ignore[override]
        *held, (last, _) = self.stages
        return " then ".join([*(f"{f.description} for {s:g} s" for f, s in held), last.description])

    def inject(self) -> None:
        first = self.stages[0][0]
        with self.lock:
            first.inject()
            self.current = first
        self.mover = threading.Thread(target=self.advance, name="fault-stages", daemon=True)
        self.mover.start()

    def advance(self) -> None:
        for (_, seconds), (following, _) in zip(self.stages, self.stages[1:], strict=False):
            if self.stop.wait(seconds):
                return
            with self.lock:
                if self.current is not None:
                    self.current.heal()
                self.current = following
                following.inject()

    def heal(self) -> None:
        self.stop.set()
        if self.mover is not None:
            self.mover.join()
        with self.lock:
            if self.current is not None:
                self.current.heal()
            self.current = None


@dataclass
class Switchover(Fault):
    """A planned switchover through Patroni's REST API: nothing to heal afterwards."""

    target: FaultTarget
    leader: str
    candidate: str

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"switchover {self.leader} -> {self.candidate}"

    def inject(self) -> None:
        self.target.switchover(self.leader, self.candidate)

    def heal(self) -> None:
        pass
