"""Isolated validation of untrusted candidate code."""

from lossmagic.sandbox.limits import JobLimits
from lossmagic.sandbox.runner import (
    Sandbox,
    SandboxReport,
    close_shared_sandbox,
    restart_worker,
    shared_sandbox,
)
from lossmagic.sandbox.screen import screen_check, screen_source

__all__ = [
    "JobLimits",
    "Sandbox",
    "SandboxReport",
    "close_shared_sandbox",
    "restart_worker",
    "screen_check",
    "screen_source",
    "shared_sandbox",
]
