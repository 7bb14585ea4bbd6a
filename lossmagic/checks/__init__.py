"""Built-in checks that decide whether a candidate loss is valid."""

from lossmagic.checks.base import CheckResult, Verdict

__all__ = ["CheckResult", "Verdict"]
