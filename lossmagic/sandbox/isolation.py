"""Operating-system isolation of sandbox processes, on Linux, through ``ctypes`` system calls.

Three layers, each used where the kernel allows it:

- a user namespace with a network namespace of its own, entered once by the worker, so
  jobs have no network interface except a loopback that is down;
- a fresh PID namespace per job (``clone3`` with ``CLONE_NEWPID``), so a job can signal only
  its own processes and killing its first process kills every process it started,
  including ones that called ``setsid``;
- Landlock, which limits each job to reading the Python installation and writing its own
  temporary directory, and on newer kernels also blocks TCP and signals to processes
  outside the job.

``describe_isolation`` names the layers that are missing, so the worker can log it once.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pwd
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Isolation",
    "clone_into_pid_namespace",
    "enter_user_namespace",
    "host_pid",
    "kill_descendants",
    "list_descendants",
    "restrict_filesystem",
    "set_parent_death_signal",
    "set_subreaper",
]

logger = logging.getLogger(__name__)

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
_CLONE_PIDFD = 0x1000

_SYS_CLONE3 = 435
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36

_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Landlock file-system rights, in the order of the kernel's bit numbers.
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_TRUNCATE = 1 << 14
_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1

_libc = ctypes.CDLL(None, use_errno=True)
# PyDLL keeps the GIL held across the call, which a fork-like clone3 needs.
_libc_gil = ctypes.PyDLL(None, use_errno=True)


@dataclass
class Isolation:
    """The isolation layers this worker has, and why each missing one is missing."""

    network_namespace: bool = False
    pid_namespace: bool = False
    landlock_abi: int = 0
    missing: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Return one line naming the missing layers and the guard used in their place."""
        if not self.missing:
            return ""
        return "sandbox isolation is weaker here: " + "; ".join(self.missing)


def _syscall(number: int, *args: object) -> int:
    result = int(_libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def enter_user_namespace(isolation: Isolation) -> None:
    """Move this process into new user and network namespaces, mapping its own uid to root.

    Must run while the process has one thread. Being root in its own user namespace lets
    the worker create a PID namespace per job; it grants nothing outside the namespace.
    """
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNET)) != 0:
        code = ctypes.get_errno()
        isolation.missing.append(
            f"no user and network namespace ({os.strerror(code)}), so jobs keep the "
            "network unless Landlock blocks TCP"
        )
        return

    for path, text in (
        ("/proc/self/setgroups", "deny"),
        ("/proc/self/uid_map", f"0 {uid} 1"),
        ("/proc/self/gid_map", f"0 {gid} 1"),
    ):
        with open(path, "w", encoding="ascii") as handle:
            handle.write(text)
    isolation.network_namespace = True


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


def clone_into_pid_namespace() -> tuple[int, int]:
    """Fork into a new PID namespace; return ``(pid, pidfd)``, or ``(0, -1)`` in the child.

    The child is process 1 of its namespace, so when it ends the kernel kills every process
    left in it. Raises ``OSError`` where the kernel refuses; callers then fall back to
    ``os.fork``. The interpreter's fork hooks run around the raw ``clone3`` call as they do
    around ``os.fork``.
    """
    pidfd = ctypes.c_int(-1)
    args = _CloneArgs(
        flags=_CLONE_NEWPID | _CLONE_PIDFD,
        pidfd=ctypes.addressof(pidfd),
        exit_signal=signal.SIGCHLD,
    )
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = int(
        _libc_gil.syscall(
            ctypes.c_long(_SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))
        )
    )
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0, -1
    code = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(code, os.strerror(code))
    return pid, pidfd.value


def host_pid() -> int:
    """Return this process's pid in the PID namespace of ``/proc``, the outermost one."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("NSpid:"):
                return int(line.split()[1])
    return os.getpid()


def set_parent_death_signal() -> None:
    """Have the kernel kill this process when the process that forked it ends."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def set_subreaper() -> None:
    """Adopt orphaned descendants, so a double-forked process stays in this process's tree."""
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def landlock_abi() -> int:
    """Return the kernel's Landlock ABI version, or 0 where Landlock is unavailable."""
    try:
        return _syscall(
            _SYS_LANDLOCK_CREATE_RULESET,
            None,
            ctypes.c_size_t(0),
            ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
        )
    except OSError:
        return 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def default_readable_paths() -> list[str]:
    """Return the paths a job must read: the Python installation, its imports and system files.

    Entries of ``sys.path`` that are or contain the user's home directory, the temporary
    directory or the current directory are left out, so those stay unreadable unless the
    installation itself lives inside one of them.
    """
    home = Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    excluded = {home, Path(tempfile.gettempdir()).resolve(), Path.cwd().resolve()}
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path]
    candidates += ["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/sys/devices/system/cpu"]
    candidates += ["/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/dev/urandom"]
    paths = []
    for entry in candidates:
        if not entry or not os.path.exists(entry):
            continue
        resolved = Path(entry).resolve()
        if any(resolved == path or resolved in path.parents for path in excluded):
            continue
        paths.append(str(resolved))
    return list(dict.fromkeys(paths))


def restrict_filesystem(
    abi: int, writable: str, readable: Iterable[str], *, cuda: bool = False
) -> None:
    """Confine this process and its future children with Landlock.

    They may read and execute beneath ``readable``, do anything beneath ``writable``, and
    write ``/dev/null``. From ABI 4 on they may not bind or connect TCP sockets, and from
    ABI 6 on they may not signal processes or reach abstract Unix sockets outside the job.
    ``cuda`` also allows the NVIDIA device files.
    """
    fs_rights = _FS_RIGHTS_BY_ABI[max(k for k in _FS_RIGHTS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(handled_access_fs=fs_rights)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    ruleset = _syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )

    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        # /proc/self resolves when opened, so this rule names the confined process itself.
        rules = [(path, read) for path in [*readable, "/proc/self"]]
        rules += [(writable, fs_rights), ("/dev/null", _FS_READ_FILE | _FS_WRITE_FILE)]
        if cuda:
            rules += [(path, fs_rights) for path in _nvidia_device_paths()]
        for path, rights in rules:
            _add_path_rule(ruleset, path, rights)

        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def _nvidia_device_paths() -> list[str]:
    return [f"/dev/{name}" for name in os.listdir("/dev") if name.startswith("nvidia")]


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_ONLY_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _syscall(
            _SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset),
            ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
        )
    finally:
        os.close(fd)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_BPF_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JUMP_SET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_BPF_RETURN = 0x06  # BPF_RET | BPF_K
_SECCOMP_ALLOW = 0x7FFF0000
_SECCOMP_ERRNO = 0x00050000
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_CLONE_THREAD = 0x00010000

# Per architecture: its audit id, the clone call, and the calls that fail outright with the
# errno given: clone3, fork and vfork where the architecture has them, execve and execveat.
_PROCESS_SYSCALLS: dict[str, tuple[int, int, tuple[tuple[int, int], ...]]] = {
    "x86_64": (
        0xC000003E,
        56,
        (
            (435, errno.ENOSYS),
            (57, errno.EAGAIN),
            (58, errno.EAGAIN),
            (59, errno.EPERM),
            (322, errno.EPERM),
        ),
    ),
    "aarch64": (0xC00000B7, 220, ((435, errno.ENOSYS), (221, errno.EPERM), (281, errno.EPERM))),
}


def deny_new_processes() -> bool:
    """Install a seccomp filter that makes fork, clone of a process, and exec fail.

    Threads can still be created: ``clone`` with ``CLONE_THREAD`` passes, and ``clone3``
    fails with ``ENOSYS`` so the C library falls back to ``clone``. Returns False on an
    architecture without a syscall table here, where nothing is installed.
    """
    table = _PROCESS_SYSCALLS.get(os.uname().machine)
    if table is None:
        return False
    arch, clone, denied = table

    program = [
        _SockFilter(_BPF_LOAD_WORD, 0, 0, 4),  # seccomp_data.arch
        _SockFilter(_BPF_JUMP_EQUAL, 0, 5 + 2 * len(denied), arch),
        _SockFilter(_BPF_LOAD_WORD, 0, 0, 0),  # seccomp_data.nr
    ]
    for number, code in denied:
        program.append(_SockFilter(_BPF_JUMP_EQUAL, 0, 1, number))
        program.append(_SockFilter(_BPF_RETURN, 0, 0, _SECCOMP_ERRNO | code))
    program += [
        _SockFilter(_BPF_JUMP_EQUAL, 0, 3, clone),
        _SockFilter(_BPF_LOAD_WORD, 0, 0, 16),  # low word of args[0], the clone flags
        _SockFilter(_BPF_JUMP_SET, 1, 0, _CLONE_THREAD),
        _SockFilter(_BPF_RETURN, 0, 0, _SECCOMP_ERRNO | errno.EAGAIN),
        _SockFilter(_BPF_RETURN, 0, 0, _SECCOMP_ALLOW),
    ]
    return _load_filter(program)


def _load_filter(program: list[_SockFilter]) -> bool:
    array = (_SockFilter * len(program))(*program)
    fprog = _SockFprog(len(program), array)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return True


def list_descendants(root: int) -> list[int]:
    """Return the live descendants of process ``root``, read from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))

    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill_descendants(root: int, *, include_root: bool = False, rounds: int = 20) -> None:
    """Kill every descendant of ``root``, and ``root`` too if asked, repeating while they fork."""
    for _ in range(rounds):
        targets = list_descendants(root)
        if include_root:
            targets.append(root)
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
        if not list_descendants(root):
            return
        time.sleep(0.005)
    logger.warning("processes under pid %d survived %d kill rounds", root, rounds)
