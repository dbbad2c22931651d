"""Where a submission's code runs: in the sandbox, or (built-ins only, when asked) in process.

Three isolation modes (``--isolation``, default ``$BENCH_ISOLATION``, else ``sandbox``):

* ``sandbox``: every submission runs in bubblewrap (:mod:`benchmark.defenses.sandbox`) behind
  the proxies of :mod:`benchmark.defenses.sandbox_proxy`; where the sandbox cannot start, the
  run is refused with one line naming the fix;
* ``builtin``: the fast in-process path for the built-in submissions only, recognised by the
  sha256 of their whole folder pinned in :data:`BUILTIN_SHA256` (editing a built-in makes it
  a stranger's code until the pin is updated in a reviewed change); every other submission
  still runs in the sandbox;
* ``none``: the user's explicit opt-out: every submission in process, unsandboxed. Such a
  run is recorded as such, and ``bench leaderboard add`` refuses it unless the submission is a
  built-in.

What ran where goes into the results (``defense.isolation``) and into a sandboxed robust
model's card (``trained_in``, :mod:`benchmark.training.sandboxed`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from benchmark.defenses.conformance import CheckResult, validate_submission
from benchmark.defenses.sandbox import SandboxError, SandboxLimits, SandboxSession, _resolve
from benchmark.defenses.sandbox_proxy import SandboxedSubmission
from benchmark.defenses.submissions import Submission, describe_folder, load_submission
from benchmark.errors import ConfigError

logger = logging.getLogger(__name__)

ISOLATIONS = ("sandbox", "builtin", "none")
ISOLATION_ENV = "BENCH_ISOLATION"

#: sha256 of each built-in submission's folder (every file; see ``submission_files``). A
#: folder whose digest differs is not the reviewed built-in and runs in the sandbox.
BUILTIN_SHA256: dict[str, str] = {
    "bit_depth_reduction": "470ab73aac9f5c3390db0eba867311015f46da5f566fa57258ea808eba3e75de",
    "gaussian_smoothing": "654b37c3da3c611ac3d1152ff94753f044b5676a60e5b52175475078f6581ef5",
    "jpeg": "20f3570c5a5eb4a268012182b758e8266d7805c32b6504f8204428fe37f98028",
    "maadvt": "1b58fcae463ffeee65ad05991cd932e71de4fe118214c1ea3b13636e6b4439dd",
    "mart": "b56987809f2c4f9dd11a71e94fbe955428842795cad9a01dd6e10827951d146e",
    "mdda": "6701524bb0b3d9082f1569a5fbd2badf9bd82817f99ec639135709bbcb4ef5b9",
    "median_filter": "1c725ddd0ef3c786beee5b92d0a8e0bde17a5dfe762e7b9736e05f75bd0d48ff",
    "medrdf": "cb02f0c237ebeabd5615c5ac9e42bb3517d5534ee558c602a8ab8757824821a3",
    "mpadvt": "ca9d728dc5c7c719b9d6c1bac99e7cb8db55cb795f8772c2c5a3a4fb463d755d",
    "pgd_at": "5c94e0e3b2a936da451dde4d2cc7dbf4dcd79c89d24398c0f10b1d366a8b85d3",
    "random_resize_pad": "7930c80ec6110900357594ebda3cb2a7cd2c35035efef85eb080617701e5ec4e",
    "trades": "22ecefbbf5c372870eb98129cc5c3edf9f89d90d9fb1e90e582deec9266b3de9",
}

AnySubmission = Submission | SandboxedSubmission


def default_isolation(explicit: str | None = None) -> str:
    """``explicit``, else ``$BENCH_ISOLATION``, else ``sandbox``; checked."""
    mode = explicit or os.environ.get(ISOLATION_ENV) or "sandbox"
    if mode not in ISOLATIONS:
        raise ConfigError(
            f"isolation '{mode}' is not one of {', '.join(ISOLATIONS)} (--isolation or "
            f"${ISOLATION_ENV})"
        )
    return mode


def is_builtin(spec: str | Path) -> bool:
    """Whether ``spec`` names a folder whose files are exactly a pinned built-in's."""
    folder, sid = _resolve(spec)
    if folder is None or sid not in BUILTIN_SHA256:
        return False
    return describe_folder(folder)[0] == BUILTIN_SHA256[sid]


def isolation_record(sub: AnySubmission, mode: str) -> dict[str, Any]:
    """What the results record about where ``sub`` ran."""
    if isinstance(sub, SandboxedSubmission):
        return {"mode": "sandbox", "requested": mode, "sandbox": sub.session.record()}
    why = (
        "a built-in submission (its folder's sha256 is pinned)"
        if is_builtin(sub.path or sub.id)
        else "the user opted out of the sandbox (--isolation none)"
    )
    return {"mode": "in-process", "requested": mode, "reason": why}


def open_submission(
    spec: str | Path,
    isolation: str | None = None,
    limits: SandboxLimits | None = None,
) -> AnySubmission:
    """The submission ``spec`` opened where ``isolation`` says it runs.

    Raises:
        SandboxError: the sandbox cannot start (one line naming the fix) or refused it.
        SubmissionError: the submission does not load.
    """
    mode = default_isolation(isolation)
    if mode == "none" or (mode == "builtin" and is_builtin(spec)):
        if mode == "none" and not is_builtin(spec):
            logger.warning(
                "running submission %s unsandboxed, in this process (--isolation none): its "
                "code can read and write what you can",
                spec,
            )
        return load_submission(spec)
    return SandboxedSubmission(spec, limits)


def submission_record(spec: str | Path) -> dict[str, Any]:
    """A submission's record for a listing (``bench list defenses``, ``bench info``): the
    pinned built-ins read in process, any other submission opened in the sandbox (reading a
    stranger's meta means importing its code), unless ``$BENCH_ISOLATION`` is ``none``."""
    mode = "none" if default_isolation() == "none" else "builtin"
    sub = open_submission(spec, mode)
    try:
        return sub.record()
    finally:
        close_submission(sub)


def close_submission(sub: Any) -> None:
    """End ``sub``'s sandbox, if it has one."""
    if isinstance(sub, SandboxedSubmission):
        sub.close()


def validate(sub: AnySubmission, **overrides: Any) -> list[CheckResult]:
    """The conformance suite on ``sub``: here, on the proxies, for a sandboxed preprocessing or
    wrapper defense (the submission cannot patch this process's copy of the suite); inside a
    fresh sandbox for a sandboxed training defense, whose loss and parameter gradients cannot
    cross the pipe (its robust model is attacked here, white-box, whatever its training did)."""
    if isinstance(sub, SandboxedSubmission) and sub.meta.kind == "training":
        with SandboxSession(sub.path or sub.id, sub.session.limits) as session:
            answer, _ = session.request(
                {"op": "validate", "target": session.target, "overrides": overrides}
            )
        passed = answer.get("passed")
        if not isinstance(passed, list):
            raise SandboxError(f"submission '{sub.id}': the sandbox sent a malformed verdict")
        return [CheckResult(str(c.get("name")), str(c.get("detail"))) for c in passed] + [
            CheckResult("sandboxed", "the suite ran in the sandbox (training defense)")
        ]
    return validate_submission(sub, **overrides)  # type: ignore[arg-type]


def validate_in_sandbox(
    submission: str | Path, limits: SandboxLimits | None = None, **overrides: Any
) -> dict[str, Any]:
    """``bench validate --isolation sandbox``: open ``submission`` in a sandbox and run the
    conformance suite (:func:`validate`).

    Returns:
        ``{"submission": record, "passed": [{"name", "detail"}, ...]}``; the record's
        ``sha256`` and ``files`` are computed here, outside the sandbox, from the folder.

    Raises:
        SandboxError: the sandbox could not start or stopped the submission (one line);
            SubmissionError (its text) where the suite failed.
    """
    with SandboxedSubmission(submission, limits) as sub:
        passed = validate(sub, **overrides)
        record = sub.record()
    return {"submission": record, "passed": [dataclasses.asdict(c) for c in passed]}
