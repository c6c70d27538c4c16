"""The application object every command finds on click's context: the lab, and the one
way a command gets its stack. Tests hand in their own factory instead of patching."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import click

from harness.core.progress import Say
from harness.lab.project import Lab

if TYPE_CHECKING:
    from harness.stack.lifecycle import Stack


def lab_stack(lab: Lab, say: Say) -> Stack:
    from harness.stack.lifecycle import Stack

    return Stack(lab, say=say)


@dataclass
class App:
    stack_factory: Callable[[Lab, Say], Stack] = lab_stack
    lab_factory: Callable[[], Lab] = field(default=Lab.discover)

    @cached_property
    def lab(self) -> Lab:
        return self.lab_factory()

    def stack(self, say: Say | None = None) -> Stack:
        from harness.cli.output import say as to_stderr

        return self.stack_factory(self.lab, say or to_stderr)


pass_app = click.make_pass_decorator(App, ensure=True)
