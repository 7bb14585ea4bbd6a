"""Resource limits of one validation job, set relative to the limits the job inherited.

A job may only tighten what it inherited: each limit becomes the smaller of the inherited
hard limit and the job's budget, and the soft limit equals the hard one, so candidate code
cannot raise it again.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["JobLimits", "apply_limits"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class JobLimits:
    """Budgets of one job. ``None`` leaves the inherited limit as it is, except for
    ``cpu_seconds``, where the sandbox uses the job's deadline plus 5 seconds.

    ``memory_bytes`` is added to the address space that the forking worker already
    maps (PyTorch maps several hundred MiB), so it is the room the job has for its own data.
    """

    cpu_seconds: int | None = None
    memory_bytes: int | None = 2048 * _MIB
    file_bytes: int | None = 64 * _MIB
    open_files: int | None = 256
    processes: int | None = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobLimits:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})


def _mapped_bytes() -> int:
    """Return the virtual memory size of this process, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[0])
    return pages * resource.getpagesize()


def _tighten(which: int, budget: int | None) -> None:
    if budget is None:
        return
    _, hard = resource.getrlimit(which)
    value = budget if hard == resource.RLIM_INFINITY else min(hard, budget)
    resource.setrlimit(which, (value, value))


def apply_limits(limits: JobLimits, *, address_space: bool = True) -> None:
    """Apply ``limits`` to this process; its children inherit them.

    Core dumps are always disabled. ``address_space=False`` skips the memory limit, for
    CUDA jobs whose driver reserves far more virtual memory than it uses.
    """
    _tighten(resource.RLIMIT_CORE, 0)
    _tighten(resource.RLIMIT_CPU, limits.cpu_seconds)
    _tighten(resource.RLIMIT_FSIZE, limits.file_bytes)
    _tighten(resource.RLIMIT_NOFILE, limits.open_files)
    _tighten(resource.RLIMIT_NPROC, limits.processes)
    if address_space and limits.memory_bytes is not None:
        _tighten(resource.RLIMIT_AS, _mapped_bytes() + limits.memory_bytes)
