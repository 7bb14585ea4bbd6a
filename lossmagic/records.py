"""Run records: everything one run did, written to a run folder as it happens.

A run folder (by default ``.lossmagic/runs/<time>-<slug>/`` under the working directory)
contains ``record.json``, each candidate as ``candidates/iteration-N.py`` and, when a
candidate validated, the final ``loss.py``. The record is rewritten after every
iteration, so an interrupted run keeps what it did so far.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from lossmagic.checks.base import CheckResult
from lossmagic.exceptions import ConfigurationError

__all__ = [
    "IterationRecord",
    "RunRecord",
    "RunStatus",
    "create_run_folder",
    "load_record",
    "source_hash",
]

RunStatus = Literal["running", "validated", "failed", "interrupted", "error"]

DEFAULT_RUNS_DIR = Path(".lossmagic") / "runs"


def source_hash(source: str) -> str:
    """Return the SHA-256 of a candidate's source, which pins what was validated."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@dataclass
class IterationRecord:
    """One candidate: how it was generated, its code, and its checks' verdicts.

    ``round`` is the generate-and-validate round of the candidate. A round can contain
    several candidates: samples, a worked example or a mechanical repair. So ``index``
    counts candidates and ``round`` counts rounds; zero means the round was not recorded.
    """

    index: int
    kind: Literal["generate", "repair", "resample"]
    messages: list[dict[str, str]] = field(default_factory=list)
    prefill: str = ""
    raw_output: str = ""
    code: str = ""
    code_sha256: str = ""
    extraction_notes: list[str] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    error: dict[str, str] | None = None
    decision: str = ""
    seed: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0
    validation_seconds: float = 0.0
    round: int = 0

    @property
    def validated(self) -> bool:
        authoritative = [c for c in self.checks if c.authoritative]
        return (
            bool(authoritative)
            and self.error is None
            and all(c.verdict != "fail" for c in authoritative)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IterationRecord:
        values = dict(data)
        values["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        return cls(**values)


@dataclass
class RunRecord:
    """Everything one run did, enough to reproduce it."""

    task: str
    name: str
    spec: str
    backend: str
    model: str
    settings: dict[str, Any]
    started: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    )
    status: RunStatus = "running"
    message: str = ""
    seconds: float = 0.0
    code: str = ""
    code_sha256: str = ""
    iterations: list[IterationRecord] = field(default_factory=list)
    folder: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["iterations"] = [i.to_dict() for i in self.iterations]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        values = dict(data)
        values["iterations"] = [IterationRecord.from_dict(i) for i in data.get("iterations", [])]
        return cls(**values)

    @property
    def rounds(self) -> int:
        """Return how many rounds ran (the candidate count where rounds were not recorded)."""
        recorded = [i.round for i in self.iterations if i.round]
        return max(recorded) if recorded else len(self.iterations)

    @property
    def record_path(self) -> Path:
        return Path(self.folder) / "record.json"

    def save(self) -> Path:
        """Write ``record.json`` (and ``loss.py`` once validated) atomically into the folder."""
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "record.json.partial"
        partial.write_text(
            json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
        )
        partial.replace(self.record_path)
        if self.status == "validated" and self.code:
            (folder / "loss.py").write_text(self.code, encoding="utf-8")
        return self.record_path

    def save_candidate(self, iteration: IterationRecord) -> None:
        if not iteration.code:
            return
        candidates = Path(self.folder) / "candidates"
        candidates.mkdir(parents=True, exist_ok=True)
        (candidates / f"iteration-{iteration.index}.py").write_text(
            iteration.code, encoding="utf-8"
        )


def _slug(text: str, limit: int = 40) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:limit].rstrip("-") or "task"


def create_run_folder(task: str, runs_dir: Path | None = None) -> Path:
    """Create a new, unique run folder named after the time and the task.

    Raises ConfigurationError when the runs folder is a file or cannot be written.
    """
    root = runs_dir if runs_dir is not None else Path.cwd() / DEFAULT_RUNS_DIR
    if root.exists() and not root.is_dir():
        raise ConfigurationError(
            f"the runs folder {root} is a file.", "Pass --runs-dir with a folder path."
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}-{_slug(task)}"
    folder = base
    suffix = 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            suffix += 1
            folder = base.with_name(f"{base.name}-{suffix}")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create a run folder in {root}: {exc.strerror}.",
                "Pass --runs-dir with a writable folder.",
            ) from None


def load_record(path: Path) -> RunRecord:
    """Read a run record from ``record.json`` or from the folder that contains it."""
    file = path / "record.json" if path.is_dir() else path
    return RunRecord.from_dict(json.loads(file.read_text(encoding="utf-8")))
