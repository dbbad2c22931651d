"""Why a retrain of a published card on this machine cannot, or may not, give the card's
sha256: what :mod:`benchmark.training.rebuild` predicts before any work (:func:`expected_gaps`,
from :func:`weight_gaps`) and records after a retrain (:func:`reproducibility_gaps`).

Float results on the CPU are bit-identical only between runs of the same torch build, thread
count and CPU kernels (:func:`benchmark.device.pin_cpu_isa`); a GPU run is not reproducible bit
for bit; a defense's training also depends on its submission folder. Unpinned kernels are more
than ATen's level (``cpu_capability``): oneDNN and MKL pick theirs per CPU, so an unpinned
AVX-512 card trained on an Intel Xeon differs on an AMD EPYC that ATen also runs at AVX-512
(measured: ``benchmarks/records/rebuild/mobilenet_v2_breastmnist_28px_s*@*``); pinned kernels
(``--cpu-isa avx2``) came back identical there. MKL honours a pinned branch other than
``COMPATIBLE`` on Intel CPUs only (:func:`mkl_branch`), so a card pinned with
``MKL_CBWR=AVX2`` on one vendor's CPU ran another MKL branch than it would on the other's.
What a card does not
record (its thread count, the code's commit) leaves the outcome open rather than settling it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from benchmark.results.provenance import cpu_vendor, mkl_branch

if TYPE_CHECKING:
    from benchmark.training.rebuild import RebuildStep


def cpu_isa_of(env: dict[str, Any]) -> str:
    """The ``--cpu-isa`` value (native, avx2, default) a card's ``environment`` ran with."""
    pinned = (env.get("cpu_isa_env") or {}).get("ATEN_CPU_CAPABILITY")
    return str(pinned) if pinned else "native"


def host_isa_of(env: dict[str, Any]) -> str | None:
    """The widest kernel level of the machine a card or record ran on (its
    ``cpu_host_isa``; for a card older than the field, ATen's level when it ran unpinned,
    which is the machine's; None where not known)."""
    if env.get("cpu_host_isa"):
        return str(env["cpu_host_isa"])
    if cpu_isa_of(env) == "native" and env.get("cpu_capability"):
        return str(env["cpu_capability"])
    return None


def _unpinned_cpu_change(env: dict[str, Any], here: dict[str, Any]) -> str | None:
    """How the CPU here differs from a card's when both run unpinned kernels at the same ATen
    level: ``vendor`` (another vendor's CPU: other weights), ``model`` (another model name:
    open), None (the same CPU, not recorded, or not this question: pinned kernels, or ATen's
    levels differ, a gap of its own)."""
    if cpu_isa_of(env) != "native" or cpu_isa_of(here) != "native":
        return None
    models = env.get("cpu"), here.get("cpu")
    if env.get("cpu_capability") != here.get("cpu_capability") or None in models:
        return None
    if models[0] == models[1]:
        return None
    vendors = cpu_vendor(models[0]), cpu_vendor(models[1])
    return "vendor" if None not in vendors and vendors[0] != vendors[1] else "model"


def _pinned_mkl_change(env: dict[str, Any], here: dict[str, Any]) -> str | None:
    """Whether a pinned card's MKL branch (:func:`mkl_branch`) is another here: ``branch``
    (it is: other weights), ``unknown`` (a CPU vendor is not recorded: open), None (the same
    branch, or not this question: unpinned, or other kernel variables, a gap of its own)."""
    if cpu_isa_of(env) == "native" or cpu_isa_of(here) == "native":
        return None
    if dict(env.get("cpu_isa_env") or {}) != dict(here.get("cpu_isa_env") or {}):
        return None
    branches = mkl_branch(env), mkl_branch(here)
    if None in branches:
        return "unknown"
    return "branch" if branches[0] != branches[1] else None


def weight_gaps(
    card: dict[str, Any], here: dict[str, Any], submission_sha256: str | None = None
) -> list[str]:
    """What makes a retrain here compute other weights than the card's run did, known from the
    card alone (empty: nothing known does): the card trained on a GPU, another torch build,
    other CPU kernels than unpinned ones picked here, unpinned kernels on another vendor's CPU
    (oneDNN and MKL choose per CPU), pinned kernels whose MKL branch is another here (MKL
    honours ``MKL_CBWR=AVX2`` on Intel CPUs only), other kernel variables, or another defense
    submission folder.

    Args:
        card: the published card.
        here: this machine's :func:`~benchmark.results.provenance.environment` (CPU).
        submission_sha256: the sha256 of the card's defense folder as it is here, if any.
    """
    env = card.get("environment") or {}
    gaps = []
    if env.get("device", "cpu") != "cpu":
        gaps.append(f"trained on {env.get('device')}: GPU training is not bit-reproducible")
    if env.get("torch") != here.get("torch"):
        gaps.append(f"torch {env.get('torch')} in the card, {here.get('torch')} here")
    if cpu_isa_of(env) == "native" and env.get("cpu_capability") != here.get("cpu_capability"):
        gaps.append(
            f"CPU kernels {env.get('cpu_capability')} in the card, {here.get('cpu_capability')} "
            "here (the card's kernels were not pinned)"
        )
    elif _unpinned_cpu_change(env, here) == "vendor":
        gaps.append(
            f"unpinned CPU kernels on another vendor's CPU ({env.get('cpu')} in the card, "
            f"{here.get('cpu')} here; oneDNN and MKL pick their kernels per CPU)"
        )
    elif _pinned_mkl_change(env, here) == "branch":
        gaps.append(
            f"MKL's branch is {mkl_branch(env)} in the card ({env.get('cpu')}), "
            f"{mkl_branch(here)} here ({here.get('cpu')}): MKL_CBWR="
            f"{(env.get('cpu_isa_env') or {}).get('MKL_CBWR')} is honoured on Intel CPUs only"
        )
    if dict(env.get("cpu_isa_env") or {}) != dict(here.get("cpu_isa_env") or {}):
        gaps.append(
            f"kernel variables {env.get('cpu_isa_env') or {}} in the card, "
            f"{here.get('cpu_isa_env') or {}} here"
        )
    defense = card.get("defense") or {}
    if submission_sha256 is not None and defense.get("sha256") not in (None, submission_sha256):
        gaps.append("the defense submission's folder differs from the card's (its sha256)")
    return gaps


def reproducibility_gaps(
    card: dict[str, Any], here: dict[str, Any], submission_sha256: str | None = None
) -> list[str]:
    """Why a retrain here may not give the card's sha256 (empty: it should, bit for bit): the
    :func:`weight_gaps`, and what leaves the outcome open rather than settling it: unpinned
    kernels on another model of the same vendor's CPU, and what the card does not record (its
    thread count, the code's commit). Arguments as there."""
    env = card.get("environment") or {}
    gaps = weight_gaps(card, here, submission_sha256)
    if _pinned_mkl_change(env, here) == "unknown":
        gaps.append(
            f"MKL's branch: the card's MKL_CBWR={(env.get('cpu_isa_env') or {}).get('MKL_CBWR')} "
            "is honoured on Intel CPUs only, and a CPU's vendor is not recorded "
            f"({env.get('cpu') or 'unknown'} in the card, {here.get('cpu') or 'unknown'} here)"
        )
    if _unpinned_cpu_change(env, here) == "model":
        gaps.append(
            f"unpinned CPU kernels on another CPU ({env.get('cpu')} in the card, "
            f"{here.get('cpu')} here)"
        )
    if not env.get("num_threads"):
        gaps.append("the card does not record its thread count")
    if str((card.get("git") or {}).get("commit", "unknown")) == "unknown":
        gaps.append("the card does not record the code's commit")
    return gaps


def defense_folder_sha256(defense: str | None) -> str | None:
    """The sha256 of a built-in defense's folder as it is here (None: no defense)."""
    if defense is None:
        return None
    from benchmark.defenses.submissions import describe_folder, submissions_dir

    folder = submissions_dir() / defense
    return describe_folder(folder)[0] if folder.is_dir() else None


def expected_gaps(steps: Sequence[RebuildStep], here: dict[str, Any]) -> dict[str, list[str]]:
    """Why each step's retrain on this machine cannot give its card's sha256, known before any
    work (:func:`weight_gaps`; an empty list: nothing known stands in the way; what a card
    does not record, e.g. its commit, leaves the outcome open and is not a reason here).

    ``here`` is this machine's :func:`~benchmark.results.provenance.environment` (CPU). A step
    whose card pinned its kernels is judged as the run will be, with the card's variables set
    (:func:`benchmark.device.pin_cpu_isa` refuses a process that lacks them). A fine-tune whose
    starting model is retrained in the same plan inherits that model's gaps: it can only start
    from the published weights, which a retrain that differs does not install.
    """
    out: dict[str, list[str]] = {}
    for s in steps:
        env = dict(here)
        if s.cpu_isa != "native":
            env["cpu_isa_env"] = dict((s.card.get("environment") or {}).get("cpu_isa_env") or {})
        gaps = weight_gaps(s.card, env, defense_folder_sha256(s.config.defense))
        start = s.config.init_from
        if start is not None and out.get(start):
            gaps.append(f"starts from '{start}', whose retrain cannot be identical here")
        out[s.model_id] = gaps
    return out


__all__ = [
    "cpu_isa_of",
    "cpu_vendor",
    "defense_folder_sha256",
    "expected_gaps",
    "host_isa_of",
    "mkl_branch",
    "reproducibility_gaps",
    "weight_gaps",
]
