"""Running submission code in a sandbox: ``bench validate --sandbox`` and :class:`SandboxedDefense`.

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

Limits (:class:`SandboxLimits`), set in the sandboxed process before the submission is
imported: ``memory_mib`` (``RLIMIT_AS``: the address space the submission may add to the
interpreter with torch and the package already imported, which map about 3 GiB of shared
libraries), ``processes`` (``RLIMIT_NPROC``: processes and threads, so a fork bomb fails with
EAGAIN), ``cpu_seconds`` (``RLIMIT_CPU``) and no core files; ``wall_seconds`` is enforced by
the parent, which kills the sandbox's process group when a request takes longer. As root the
sandbox drops to ``nobody`` before the submission runs (root's ``RLIMIT_NPROC`` is not
enforced by the kernel), with ``PR_SET_NO_NEW_PRIVS`` set.

The pipe protocol (both ways): a 4-byte big-endian length, a JSON header of that length, then
the header's ``nbytes`` of raw payload. A tensor travels as its C-contiguous bytes with
``shape`` and ``dtype`` in the header. The sandbox writes only framed messages on its private
copy of stdout (the submission's own prints go to stderr); anything else, or a tensor whose
shape, dtype, range or finiteness is not what was sent, ends the run with one line.

Where the sandbox cannot start (no ``bwrap``, or namespaces refused) every entry point raises
one line naming the fix: ``apt-get install bubblewrap``, or ``--no-sandbox`` to opt out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmark.defenses.base import SubmissionError
from benchmark.defenses.sandbox_wire import read_msg, tensor_message, write_msg
from benchmark.defenses.submissions import submissions_dir

#: The sandbox's private writable scratch (a tmpfs inside it; not the host's /tmp).
SCRATCH = "/tmp"
PKG_MOUNT = "/sandbox/pkg"
SUB_MOUNT = "/sandbox/submission"
NOBODY = 65534
STARTUP_SECONDS = 120.0
"""Deadline of the worker's start (the interpreter, torch and the package imported)."""
INSTALL_HINT = "apt-get install bubblewrap, or pass --no-sandbox to run it unsandboxed"


class SandboxError(SubmissionError):
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

    memory_mib: int = 4096
    processes: int = 64
    cpu_seconds: int = 3600
    wall_seconds: float = 600.0
    scratch_mib: int = 256


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


def _ro_binds(mounts: list[tuple[Path, str]]) -> list[str]:
    """Read-only binds, with every missing ancestor made world-traversable (bwrap creates them
    0700 otherwise, which the unprivileged worker could not enter). A source already visible
    under another bind is not bound again."""
    chosen: list[tuple[Path, str]] = []
    for src, dst in sorted(mounts, key=lambda m: len(m[1])):
        if any(dst == d or dst.startswith(d.rstrip("/") + "/") for _, d in chosen):
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
        args += ["--ro-bind", str(src), dst]
    return args


def _bootstrap(limits: SandboxLimits, nproc: int) -> str:
    """The worker's first lines: trusted imports, then drop privileges and set the limits,
    and only then import the worker (which imports the submission)."""
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
from benchmark.defenses.sandbox_worker import serve
serve({limits.memory_mib}, {limits.processes})
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
    """

    def __init__(
        self,
        submission: str | Path,
        limits: SandboxLimits | None = None,
        read_only: tuple[Path, ...] = (),
    ) -> None:
        self.limits = limits or SandboxLimits()
        folder, self.id = _resolve(submission)
        bwrap = check_sandbox()
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
        threads = os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads())
        env = {
            "HOME": SCRATCH,
            "TMPDIR": SCRATCH,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": threads,
            "NUMBA_CACHE_DIR": f"{SCRATCH}/numba",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        cmd = [bwrap, *_namespace_flags(), "--die-with-parent", "--new-session", "--clearenv"]
        for k, v in env.items():
            cmd += ["--setenv", k, v]
        cmd += ["--ro-bind", "/usr", "/usr", *_host_links(), "--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", str(self.limits.scratch_mib << 20), "--tmpfs", SCRATCH]
        cmd += [*_ro_binds(mounts), "--chdir", SCRATCH]
        cmd += [sys.executable, "-I", "-c", _bootstrap(self.limits, nproc)]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # Startup (torch's import) is not a request: it has its own, longer deadline.
        deadline = time.monotonic() + max(STARTUP_SECONDS, self.limits.wall_seconds)
        try:
            read_msg(self._proc.stdout.fileno(), deadline, self._timed_out)  # type: ignore[union-attr]
        except (EOFError, ValueError, struct.error):
            raise self._died() from None

    def request(self, header: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one request; its answer, or a one-line :class:`SandboxError`."""
        proc = self._proc
        if proc.poll() is not None:
            raise self._died()
        deadline = time.monotonic() + self.limits.wall_seconds
        try:
            write_msg(proc.stdin.fileno(), header, payload)  # type: ignore[union-attr]
            answer, data = read_msg(proc.stdout.fileno(), deadline, self._timed_out)  # type: ignore[union-attr]
        except SandboxError:
            raise
        except (EOFError, BrokenPipeError):
            raise self._died() from None
        except (ValueError, UnicodeDecodeError, struct.error) as exc:
            self.close()
            raise SandboxError(
                f"submission '{self.id}': the sandbox broke the protocol ({exc}); it may write "
                "only framed messages"
            ) from None
        if not answer.get("ok"):
            raise SandboxError(str(answer.get("error", "no reason given")).splitlines()[0])
        return answer, data

    def _timed_out(self) -> SandboxError:
        self.close()
        return SandboxError(
            f"submission '{self.id}': stopped by the sandbox: no answer within the wall-time "
            f"limit of {self.limits.wall_seconds:g} s"
        )

    def _died(self) -> SandboxError:
        self.close()
        code = self._proc.returncode
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        if code == -signal.SIGXCPU:
            why = f"CPU-time limit of {self.limits.cpu_seconds} s exceeded"
        elif code is not None and code < 0:
            why = f"killed by signal {signal.Signals(-code).name}"
        else:
            last = (err.strip().splitlines() or ["no message"])[-1]
            why = f"it exited with status {code} ({last})"
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

    def __enter__(self) -> SandboxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self.close()


def validate_in_sandbox(
    submission: str | Path, limits: SandboxLimits | None = None, **overrides: Any
) -> dict[str, Any]:
    """Import ``submission`` and run the conformance suite inside the sandbox.

    Returns:
        ``{"submission": record, "passed": [{"name", "detail"}, ...]}``; the record's
        ``sha256`` and ``files`` are computed here, outside the sandbox, from the folder.

    Raises:
        SandboxError: the sandbox could not start or stopped the submission (one line);
            SubmissionError (its text) where the suite failed.
    """
    from benchmark.defenses.submissions import describe_folder

    folder, _ = _resolve(submission)
    with SandboxSession(submission, limits) as session:
        answer, _ = session.request(
            {"op": "validate", "target": session.target, "overrides": overrides}
        )
        record = answer.get("submission")
        passed = answer.get("passed")
        if not isinstance(record, dict) or not isinstance(passed, list):
            raise SandboxError(f"submission '{session.id}': the sandbox sent a malformed verdict")
        if record.get("kind") == "preprocessing":
            passed.append(_recheck_outside(session, overrides))
    if folder is not None:
        digest, files = describe_folder(folder)
        record.update(sha256=digest, files=[f.record() for f in files])
    return {"submission": record, "passed": passed}


def _recheck_outside(session: SandboxSession, overrides: dict[str, Any]) -> dict[str, str]:
    """The suite's output checks again, run here on tensors from the sandbox: the submission
    can patch the sandbox's copy of the suite, not this one."""
    from benchmark.defenses import conformance

    class _Remote:
        id = session.id

        def build(self, seed: int = 0, **params: Any) -> SandboxedDefense:
            return SandboxedDefense(session.id, seed=seed, session=session, **params)

    remote = _Remote()
    remote.meta = remote.build(**overrides).meta  # type: ignore[attr-defined]

    def fail(check: str, problem: str) -> SubmissionError:
        return SubmissionError(f"submission '{session.id}' fails '{check}' (outside): {problem}")

    for shape in conformance.SHAPES:
        conformance._check_on_shape(remote, shape, fail, overrides)  # type: ignore[arg-type]
    return {
        "name": "checked outside",
        "detail": "shape, dtype, range, determinism, flags on tensors from the sandbox",
    }


class SandboxedDefense:
    """A preprocessing defense running in a sandbox: ``purify(x)`` sends the tensor over the
    pipe and checks what comes back (shape and dtype of the input, finite, inside [0, 1])
    before returning it. Not differentiable: the evaluation attacks it through BPDA.

    Args:
        submission: folder, submissions id or registered id of a ``preprocessing`` defense.
        seed: the defense's seed.
        limits: the sandbox's resource limits.
        **params: parameter overrides.
    """

    def __init__(
        self,
        submission: str | Path,
        seed: int = 0,
        limits: SandboxLimits | None = None,
        session: SandboxSession | None = None,
        **params: Any,
    ) -> None:
        self._owned = session is None
        self.session = session or SandboxSession(submission, limits)
        answer, _ = self.session.request(
            {"op": "load", "target": self.session.target, "seed": seed, "params": params}
        )
        meta = answer.get("meta")
        self.id = self.session.id
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind != "preprocessing":
            self.close()
            raise SandboxError(
                f"submission '{self.id}': only preprocessing defenses run behind the sandboxed "
                f"tensor interface yet, not '{kind}'"
            )
        # The flags the evaluation reads; gradients do not cross the pipe (BPDA instead).
        self.meta = SimpleNamespace(**{**meta, "differentiable": False})

    def reseed(self, seed: int) -> None:
        """Reseed the defense in the sandbox."""
        self.session.request({"op": "reseed", "seed": int(seed)})

    def purify(self, x: Tensor) -> Tensor:
        """The sandboxed defense's ``purify(x)``, checked (one-line error otherwise)."""
        if x.dtype != torch.float32:
            raise SandboxError(f"purify takes float32 tensors, not {x.dtype}")
        header, payload = tensor_message(x)
        answer, data = self.session.request({"op": "purify", **header}, payload)
        shape, dtype = answer.get("shape"), answer.get("dtype")
        if shape != list(x.shape) or dtype != "float32":
            raise SandboxError(
                f"submission '{self.id}': purify returned {dtype} of shape {shape} for float32 of "
                f"shape {list(x.shape)}; refused"
            )
        if len(data) != x.numel() * 4:
            raise SandboxError(f"submission '{self.id}': purify sent {len(data)} bytes; refused")
        out = torch.from_numpy(np.frombuffer(data, dtype=np.float32).reshape(shape).copy())
        if not torch.isfinite(out).all() or (out.numel() and (out.min() < 0 or out.max() > 1)):
            raise SandboxError(
                f"submission '{self.id}': purify returned values outside [0, 1] or not finite; "
                "refused"
            )
        return out.to(x.device)

    __call__ = purify

    def close(self) -> None:
        """End the sandbox (unless the session was lent by the caller)."""
        if self._owned:
            self.session.close()

    def __enter__(self) -> SandboxedDefense:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
