"""Running submission code in a sandbox: the bubblewrap worker process and its limits.

A submission's ``defense.py`` is code from outside the project. Here it runs in a separate
process under bubblewrap (``bwrap``, Debian/Ubuntu package ``bubblewrap``), and the evaluator
talks to it over a narrow typed pipe (tensors in, tensors out), never sharing its interpreter.

Why bubblewrap: it is the unprivileged sandbox Flatpak is built on, a single small setuid-free
binary with no daemon, packaged by every distribution; it builds the sandbox from Linux
namespaces (mount, network, pid, ipc, uts, user) and can load a seccomp filter. nsjail does the
same but is not packaged by Debian and is configured through protobuf files; firejail is a
setuid-root binary with a large attack surface and whole-desktop profiles; Docker (or podman)
needs a daemon or a container image and root-equivalent access to it; seccomp alone filters
system calls but gives no private view of the file system or the network.

What the sandbox sees (everything else of the host is absent, not merely read-only):

* read-only: ``/usr`` (with the host's ``/lib``, ``/lib64``, ``/bin``, ``/sbin`` links), the
  Python installation (``sys.base_prefix``), the virtualenv (``sys.prefix``), the package
  source (``benchmark/``, at ``/sandbox/pkg/benchmark``), the submission folder (at
  ``/sandbox/submission/<id>``) and any extra folders the caller names (data, zoo);
* writable: a private tmpfs at ``/tmp`` (``HOME`` and ``TMPDIR``), of ``scratch_mib``, gone
  when the sandbox ends; nothing else, so the run writes nothing on the host;
* ``--unshare-all``: no network (a fresh network namespace holds only a downed loopback), its
  own pid namespace, ``--die-with-parent`` and ``--new-session``; an empty environment.

The sandbox computes on the CPU (its ``/dev`` holds no GPU, and CUDA's address-space
reservations would not fit ``RLIMIT_AS``): on a GPU machine a sandboxed wrapper's copy of the
model runs there on the CPU, and tensors cross the pipe from and to the GPU.

Limits (:class:`SandboxLimits`), set in the sandboxed process before the submission is
imported: ``memory_mib`` (``RLIMIT_AS``: the address space the submission may add to the
interpreter with torch and the package already imported, which map about 3 GiB of shared
libraries), ``processes`` (``RLIMIT_NPROC``: processes and threads, so a fork bomb fails with
EAGAIN), ``cpu_seconds`` (``RLIMIT_CPU``) and no core files; ``wall_seconds`` is enforced by
the parent, which kills the sandbox's process group when a request takes longer. As root the
sandbox drops to ``nobody`` before the submission runs (root's ``RLIMIT_NPROC`` is not
enforced by the kernel), with ``PR_SET_NO_NEW_PRIVS`` set. These are per-process limits: a
submission that forks may hold up to ``processes`` times ``memory_mib`` and CPU time, and its
children run between requests (the wall clock runs only during one). Capping the whole
sandbox needs a cgroup (``systemd-run --scope -p MemoryMax=... -p TasksMax=...``), which an
unprivileged evaluator does not have everywhere; ``/dev/shm`` is a tmpfs of ``scratch_mib``
and the rest of ``/dev`` read-only. No seccomp filter is loaded, so the submission reaches the
kernel's whole system-call surface inside its namespaces.

The pipe protocol (both ways): a 4-byte big-endian length, a JSON header of that length, then
the header's ``nbytes`` of raw payload. A tensor travels as its C-contiguous bytes with
``shape`` and ``dtype`` in the header. The sandbox writes only framed messages on its private
copy of stdout (the submission's own prints go to stderr); anything else, or a tensor whose
shape, dtype, range or finiteness is not what was sent, ends the run with one line.

Where the sandbox cannot start (no ``bwrap``, or namespaces refused) every entry point raises
one line naming the fix: ``apt-get install bubblewrap``, or ``--isolation none`` to opt out.

This module is the process and its limits; :mod:`benchmark.defenses.sandbox_proxy` holds the
evaluator's side of the typed interface (the submission and defense proxies) and
:mod:`benchmark.defenses.isolation` decides which submissions run where.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from benchmark.defenses.base import IsolationError
from benchmark.defenses.sandbox_wire import MAX_PAYLOAD, WireError, read_msg, write_msg
from benchmark.defenses.submissions import submissions_dir
from benchmark.device import ISA_VARIABLES

logger = logging.getLogger(__name__)

#: The sandbox's private writable scratch (a tmpfs inside it; not the host's /tmp).
SCRATCH = "/tmp"
PKG_MOUNT = "/sandbox/pkg"
SUB_MOUNT = "/sandbox/submission"
NOBODY = 65534
STARTUP_SECONDS = 120.0
"""Deadline of the worker's start (the interpreter, torch and the package imported)."""
INSTALL_HINT = "apt-get install bubblewrap, or pass --isolation none to run it unsandboxed"
TAIL_LINES = 40
"""Lines of the sandbox's stderr kept for the error message when it dies."""


class SandboxError(IsolationError):
    """The sandbox could not start, or stopped or refused what the submission did."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandbox (see the module docstring for how each is enforced).

    Attributes:
        memory_mib: address space the submission may add (``RLIMIT_AS`` above the baseline).
        processes: processes and threads (``RLIMIT_NPROC``).
        cpu_seconds: CPU time of the sandboxed process (``RLIMIT_CPU``).
        wall_seconds: wall time of one request, enforced by the parent.
        scratch_mib: size of the private writable ``/tmp``.
    """

    memory_mib: int = 8192
    processes: int = 256
    cpu_seconds: int = 7 * 24 * 3600
    wall_seconds: float = 600.0
    scratch_mib: int = 256

    @classmethod
    def parse(cls, items: list[str] | tuple[str, ...]) -> SandboxLimits:
        """Limits from ``name=value`` items (``--sandbox-limit memory_mib=4096``).

        Raises:
            ConfigError: an unknown name or a value that is not a positive number.
        """
        from benchmark.errors import ConfigError

        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in items:
            name, _, raw = item.partition("=")
            name = name.strip().replace("-", "_")
            if name not in known:
                raise ConfigError(
                    f"--sandbox-limit '{item}': unknown limit; use one of {', '.join(known)}"
                )
            try:
                value = float(raw) if name == "wall_seconds" else int(raw)
            except ValueError:
                value = -1
            if value <= 0:
                raise ConfigError(f"--sandbox-limit '{item}': give a positive number")
            values[name] = value
        return cls(**values)


def _refuse(problem: str) -> SandboxError:
    return SandboxError(f"the sandbox cannot start: {problem}; {INSTALL_HINT}")


def check_sandbox() -> str:
    """The path of ``bwrap`` once a trivial sandbox has started, else a one-line error."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise _refuse("bubblewrap (bwrap) is not installed")
    probe = [bwrap, *_namespace_flags(), "--ro-bind", "/", "/", "--dev", "/dev", "true"]
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise _refuse(f"bwrap could not create its namespaces ({why})")
    return bwrap


def _namespace_flags() -> list[str]:
    # As real root, a user namespace would map only uid 0, and the worker could not then drop
    # to nobody; root needs no user namespace to create the others. Otherwise all of them.
    if os.geteuid() == 0:
        spaces = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        return [*spaces, "--unshare-cgroup-try"]
    return ["--unshare-all"]


def _host_links() -> list[str]:
    """The host's merged-/usr links (/lib -> usr/lib ...), or read-only binds where real."""
    args = []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        p = Path(name)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), name]
        elif p.is_dir():
            args += ["--ro-bind", name, name]
    return args


def _binds(mounts: list[tuple[Path, str]], writable: tuple[str, ...] = ()) -> list[str]:
    """Read-only binds (read-write for the destinations in ``writable``), with every missing
    ancestor made world-traversable (bwrap creates them 0700 otherwise, which the unprivileged
    worker could not enter). A source already visible under another bind is not bound again."""
    chosen: list[tuple[Path, str]] = []
    for src, dst in sorted(mounts, key=lambda m: len(m[1])):
        if dst not in writable and any(
            dst == d or dst.startswith(d.rstrip("/") + "/") for _, d in chosen
        ):
            continue
        chosen.append((src, dst))
    made = {"/", "/usr", SCRATCH, "/proc", "/dev"}
    args: list[str] = []
    for src, dst in chosen:
        parts = Path(dst).parts
        for i in range(2, len(parts)):
            anc = "/".join(parts[:i]).replace("//", "/")
            if anc not in made:
                made.add(anc)
                args += ["--perms", "0755", "--dir", anc]
        args += ["--bind" if dst in writable else "--ro-bind", str(src), dst]
    return args


def _bootstrap(limits: SandboxLimits, nproc: int, entry: str) -> str:
    """The worker's first lines: trusted imports, then drop privileges and set the limits,
    and only then import the worker ``entry`` (``module:function``; it imports the
    submission)."""
    module, _, function = entry.partition(":")
    if not (module.startswith("benchmark.") and function.isidentifier()):
        raise ValueError(f"a sandbox entry is 'benchmark.<module>:<function>', not {entry!r}")
    return f"""
import ctypes, os, resource, sys
sys.path.insert(0, {PKG_MOUNT!r})
import numpy, torch, benchmark.defenses.conformance
if os.getuid() == 0:
    os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})
ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)
base = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024
for lim, value in ((resource.RLIMIT_AS, base + {limits.memory_mib << 20}),
                   (resource.RLIMIT_NPROC, {nproc}), (resource.RLIMIT_CPU, {limits.cpu_seconds}),
                   (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(lim, (value, value))
from {module} import {function}
{function}({limits.memory_mib}, {limits.processes})
"""


def _user_processes(uid: int) -> int:
    """Processes and threads the user already runs (they count against ``RLIMIT_NPROC``)."""
    n = 0
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and p.stat().st_uid == uid:
                n += len(os.listdir(p / "task"))
        except OSError:
            continue
    return n


def _resolve(spec: str | Path) -> tuple[Path | None, str]:
    """A submission's folder (None for a registered id) and id, without importing it."""
    path = Path(spec)
    if path.is_dir():
        return path.resolve(), path.resolve().name
    folder = submissions_dir() / str(spec)
    if folder.is_dir():
        return folder.resolve(), folder.name
    return None, str(spec)


class SandboxSession:
    """One long-lived sandboxed worker holding one submission; requests go over the pipe.

    Args:
        submission: a submission folder, an id under ``submissions/``, or a registered id.
        limits: the resource limits.
        read_only: further host folders the worker may read (data, zoo), at the same paths.
        writable: host folders the worker may write (a training run's staging zoo), at the
            same paths; nothing else of the host is writable.
        entry: the worker's ``module:function`` (``serve(memory_mib, processes)``); a layer
            above this one passes its own worker (the trainer's,
            :mod:`benchmark.training.sandbox_entry`).
    """

    def __init__(
        self,
        submission: str | Path,
        limits: SandboxLimits | None = None,
        read_only: tuple[Path, ...] = (),
        writable: tuple[Path, ...] = (),
        entry: str = "benchmark.defenses.sandbox_worker:serve",
    ) -> None:
        self.limits = limits or SandboxLimits()
        folder, self.id = _resolve(submission)
        self.folder = folder
        self.bwrap = check_sandbox()
        uid = NOBODY if os.geteuid() == 0 else os.geteuid()
        nproc = self.limits.processes + _user_processes(uid)
        package = Path(__file__).resolve().parents[1]
        mounts = [
            (Path(sys.base_prefix).resolve(), str(Path(sys.base_prefix).resolve())),
            (Path(sys.prefix).resolve(), sys.prefix),
            (package, f"{PKG_MOUNT}/benchmark"),
            *[(Path(p).resolve(), str(Path(p).resolve())) for p in read_only],
        ]
        self.target = str(self.id)
        if folder is not None:
            self.target = f"{SUB_MOUNT}/{folder.name}"
            mounts.append((folder, self.target))
        # The threads this process computes with now (not $OMP_NUM_THREADS, which a library
        # call may have overridden since): the sandbox's results must equal in-process ones.
        threads = str(torch.get_num_threads())
        env = {
            "HOME": SCRATCH,
            "TMPDIR": SCRATCH,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": threads,
            "NUMBA_CACHE_DIR": f"{SCRATCH}/numba",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            # The CPU kernels this process was pinned to (bench train --cpu-isa): the worker's
            # kernels are chosen when it starts, from these.
            **{k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
        }
        cmd = [self.bwrap, *_namespace_flags(), "--die-with-parent", "--new-session", "--clearenv"]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        cmd += ["--ro-bind", "/usr", "/usr", *_host_links(), "--proc", "/proc", "--dev", "/dev"]
        # /dev/shm (torch's shared memory) is a small private tmpfs and the rest of /dev is
        # read-only: an unprivileged bwrap would leave /dev writable, beyond every limit.
        cmd += ["--perms", "1777", "--size", str(self.limits.scratch_mib << 20)]
        cmd += ["--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        cmd += ["--perms", "1777", "--size", str(self.limits.scratch_mib << 20), "--tmpfs", SCRATCH]
        outputs = []
        for w in writable:
            w = Path(w).resolve()
            w.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                _chown_tree(w, NOBODY)
            mounts.append((w, str(w)))
            outputs.append(str(w))
        cmd += _binds(mounts, tuple(outputs))
        bootstrap = _bootstrap(self.limits, nproc, entry)
        cmd += ["--chdir", SCRATCH, sys.executable, "-I", "-c", bootstrap]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.set_blocking(self._proc.stdin.fileno(), False)  # type: ignore[union-attr]
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        # Startup (torch's import) is not a request: it has its own, longer deadline.
        deadline = time.monotonic() + max(STARTUP_SECONDS, self.limits.wall_seconds)
        try:
            read_msg(self._proc.stdout.fileno(), deadline, self._timed_out)  # type: ignore[union-attr]
        except (EOFError, WireError, struct.error):
            raise self._died() from None

    def _read_stderr(self) -> None:
        """Drain the sandbox's stderr (its prints, its logging) into this process's log, so a
        chatty submission never blocks on a full pipe; keep the last lines for errors."""
        stream = self._proc.stderr
        assert stream is not None
        for raw in iter(lambda: stream.readline(8192), b""):
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            logger.debug("[sandbox %s] %s", self.id, line)

    def record(self) -> dict[str, Any]:
        """What the results record about this sandbox: the tool, its version, the limits."""
        done = subprocess.run([self.bwrap, "--version"], capture_output=True, text=True)
        return {
            "tool": "bubblewrap",
            "version": done.stdout.strip().removeprefix("bubblewrap").strip(),
            "limits": asdict(self.limits),
            "network": False,
            "device": "cpu",
        }

    def request(
        self,
        header: dict[str, Any],
        payload: bytes = b"",
        wall_seconds: float | None = None,
        max_payload: int = MAX_PAYLOAD,
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request; its answer, or a one-line :class:`SandboxError` (after which the
        sandbox is ended, unless it only refused the request).

        Args:
            header: the request (``op`` and its fields).
            payload: its tensors' bytes.
            wall_seconds: this request's wall-time limit (default: the limits').
            max_payload: the largest answer payload accepted (bytes).
        """
        proc = self._proc
        if proc.poll() is not None:
            raise self._died()
        wall = self.limits.wall_seconds if wall_seconds is None else wall_seconds
        self._wall = wall
        deadline = time.monotonic() + wall
        try:
            write_msg(proc.stdin.fileno(), header, payload, deadline, self._timed_out)  # type: ignore[union-attr]
            answer, data = read_msg(
                proc.stdout.fileno(),  # type: ignore[union-attr]
                deadline,
                self._timed_out,
                max_payload,
            )
        except SandboxError:
            raise
        except (EOFError, BrokenPipeError):
            raise self._died() from None
        except Exception as exc:  # anything else the answer provokes ends the sandbox
            self.close()
            raise SandboxError(
                f"submission '{self.id}': the sandbox broke the protocol ({exc}); it may write "
                "only framed messages"
            ) from None
        if answer.get("ok") is not True:
            lines = str(answer.get("error") or "no reason given").splitlines() or ["?"]
            raise SandboxError(lines[0][:2000])
        return answer, data

    def _timed_out(self) -> SandboxError:
        self.close()
        wall = getattr(self, "_wall", self.limits.wall_seconds)
        return SandboxError(
            f"submission '{self.id}': stopped by the sandbox: no answer within the wall-time "
            f"limit of {wall:g} s"
        )

    def _died(self) -> SandboxError:
        self.close()
        code = self._proc.returncode
        self._drain.join(timeout=5)
        if code == -signal.SIGXCPU:
            why = f"CPU-time limit of {self.limits.cpu_seconds} s exceeded"
        elif code is not None and code < 0:
            why = f"killed by signal {signal.Signals(-code).name}"
        else:
            last = ([line for line in self._tail if line.strip()] or ["no message"])[-1]
            why = f"it exited with status {code} ({last.strip()})"
        return SandboxError(f"submission '{self.id}': stopped by the sandbox: {why}")

    def close(self) -> None:
        """End the worker and everything it started (its whole process group)."""
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()

    @property
    def alive(self) -> bool:
        """Whether the worker still runs."""
        return self._proc.poll() is None

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self.close()


def _chown_tree(folder: Path, uid: int) -> None:
    """Hand a writable folder to the unprivileged sandbox user (the sandbox runs as nobody
    when the evaluator is root)."""
    for p in [folder, *folder.rglob("*")]:
        with contextlib.suppress(OSError):
            os.chown(p, uid, -1, follow_symlinks=False)
