"""Isolated validation of untrusted candidate code."""

from lossmagic.sandbox.runner import Sandbox, SandboxReport

__all__ = ["Sandbox", "SandboxReport"]
