"""Check results: the verdicts that decide whether a candidate is accepted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CheckResult", "Verdict"]

Verdict = Literal["pass", "fail", "skip"]


@dataclass
class CheckResult:
    """The outcome of one check on one candidate.

    Authoritative checks decide acceptance; others (generated tests) are evidence.
    ``evidence`` contains JSON-ready facts: shapes, values, gradient norms, tracebacks.
    """

    name: str
    verdict: Verdict
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    authoritative: bool = True
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            verdict=data["verdict"],
            message=str(data.get("message", "")),
            evidence=dict(data.get("evidence", {})),
            authoritative=bool(data.get("authoritative", True)),
            seconds=float(data.get("seconds", 0.0)),
        )
