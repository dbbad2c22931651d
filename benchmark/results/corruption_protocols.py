"""Versioned corruption protocols: what fixes a ranked number on a corruption board.

The L-inf protocols (:mod:`benchmark.results.protocols`) fix attacks and budgets; a corruption
protocol fixes the common corruptions instead: the images (the whole official test split), the
corruptions and their severities, the perturbation sequences, and the seed of every corruption
draw, so that every entry of a board is scored on exactly the same corrupted images and two
entries can be compared image by image. Its id and version go into every results file that
runs it (``bench evaluate --corruptions mrb_corruption_v1``), with the sha256 of its resolved
configuration.

The ranked figure is the **mean corruption balanced accuracy**: the balanced accuracy on each
(corruption, severity) pair, averaged over all pairs (MedMNIST-C, Di Salvo et al. 2024, reports
the balanced error per corruption and severity; ImageNet-C, Hendrycks & Dietterich 2019,
averages over corruptions and severities). It equals the class-balanced mean of a per-image
figure, the share of the image's corrupted versions classified correctly, so a run records, for
every pair, which images stayed correct, and a board recomputes the figure, its interval and
the paired tests from those outcomes. The sequences' mean flip probability (Xu et al. 2021,
Robust-Benchmark) is reported beside it, not ranked.

Pure data, no torch: the corruption components build their plan from it, and the leaderboard,
which must not load torch, checks runs against it. ``docs/protocol.md`` is the prose version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from benchmark.registry import Registry
from benchmark.results.protocols import ProtocolMeta

#: ImageNet-C's corruptions (Hendrycks & Dietterich 2019) without glass blur (too slow on a
#: CPU), then MedMNIST-C's (Di Salvo et al. 2024) not already named: the ``standard`` preset's
#: set when version 1 was written. Spelled out here so that a change to a preset cannot change
#: what a published protocol run means.
_V1_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "brightness_up", "brightness_down",
    "contrast_up", "contrast_down", "gamma_corr_up", "gamma_corr_down",
)  # fmt: skip
#: Xu et al. 2021's fourteen perturbation-sequence types (Robust-Benchmark).
_V1_SEQUENCES = (
    "brightness_seq", "gaussian_blur_seq", "gaussian_noise_seq", "motion_blur_seq", "rotate_seq",
    "scale_seq", "shear_seq", "shot_noise_seq", "snow_seq", "spatter_seq", "speckle_noise_seq",
    "tilt_seq", "translate_seq", "zoom_blur_seq",
)  # fmt: skip


@dataclass(frozen=True)
class CorruptionProtocol:
    """A named, versioned corruption protocol.

    Attributes:
        id: protocol id, e.g. ``mrb_corruption_v1`` (the major version is part of it).
        version: full version; any change to what it resolves to bumps it.
        corruptions: severity corruption ids, each run at every severity of ``severities``.
        severities: the severities of the severity corruptions.
        sequences: perturbation-sequence type ids (flip probability; reported, not ranked).
        sequence_severities: the severities of the sequences.
        n_frames: frames per sequence, the clean frame included.
        configs_sha256: sha256 of every corruption's and sequence's configuration (the
            implementation's name, source, working size, constants and version: see
            :func:`configs_digest`), so a change to what a corruption computes changes the
            protocol's sha256 and a run made with other implementations is not conformant.
        seed: base seed of every corruption draw, the same for every entry whatever the
            model's seed (image ``i``'s draw is seeded by the seed, the corruption, the
            severity and ``i``'s index in the split).
        split: the split scored; always the whole split.
        description: one line for ``bench list protocols``.
        reference: where its corruptions come from.
        notes: what a reader should know about its figure.
    """

    id: str
    version: str
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    sequences: tuple[str, ...]
    sequence_severities: tuple[int, ...]
    n_frames: int
    configs_sha256: str
    seed: int = 0
    split: str = "test"
    description: str = ""
    reference: str = ""
    notes: str = ""

    @property
    def meta(self) -> ProtocolMeta:
        """Its listing metadata (track ``corruption``)."""
        return ProtocolMeta(
            self.description, self.version, "corruption", self.reference, self.notes
        )

    @property
    def pairs(self) -> int:
        """Corrupted versions of each image the ranked figure averages over."""
        return len(self.corruptions) * len(self.severities)

    def resolved(self) -> dict[str, Any]:
        """The whole protocol as JSON data (what its sha256 covers)."""
        return {
            "id": self.id,
            "version": self.version,
            "kind": "corruption",
            "split": self.split,
            "images": "all",
            "seed": self.seed,
            "corruptions": list(self.corruptions),
            "severities": list(self.severities),
            "sequences": list(self.sequences),
            "sequence_severities": list(self.sequence_severities),
            "n_frames": self.n_frames,
            "configs_sha256": self.configs_sha256,
            "metric": "mean corruption balanced accuracy over every (corruption, severity)",
        }

    @property
    def sha256(self) -> str:
        """sha256 of :meth:`resolved` as canonical JSON."""
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """The ``corruption_protocol`` block of a results file that ran this protocol."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}


def configs_digest(
    corruptions: list[tuple[str, dict[str, Any]]], sequences: list[tuple[str, dict[str, Any]]]
) -> str:
    """sha256 of the (id, configuration) pairs of the severity corruptions and the sequence
    types, in order, as canonical JSON: what a protocol pins (``configs_sha256``) and what a
    run's recorded ``config`` blocks must give."""
    blob = json.dumps(
        {"corruptions": [list(c) for c in corruptions], "sequences": [list(q) for q in sequences]},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


CORRUPTION_PROTOCOLS: Registry[CorruptionProtocol] = Registry(
    "corruption_protocol", meta_type=ProtocolMeta
)


MRB_CORRUPTION_V1: CorruptionProtocol = CORRUPTION_PROTOCOLS.register(
    "mrb_corruption_v1",
    CorruptionProtocol(
        id="mrb_corruption_v1",
        version="1.0",
        corruptions=_V1_CORRUPTIONS,
        severities=(1, 2, 3, 4, 5),
        sequences=_V1_SEQUENCES,
        sequence_severities=(3,),
        n_frames=21,
        # configs_digest of the registered implementations when version 1 was written
        # (tests/unit/test_corruption_protocol.py recomputes it from the registry).
        configs_sha256="38ee4cbc34b9f0dae5bc33d814fd034a1d1fa62346a87f7c9b347c914d753ad0",
        seed=0,
        description="Common corruptions on the full test split: 22 ImageNet-C and MedMNIST-C "
        "corruptions at severities 1-5 (ranked: mean corruption balanced accuracy) and the 14 "
        "Robust-Benchmark sequences at severity 3 (mean flip probability, reported)",
        reference="Hendrycks & Dietterich 2019 (ImageNet-C, ICLR), Di Salvo et al. 2024 "
        "(MedMNIST-C), Xu et al. 2021 (Robust-Benchmark sequences); docs/protocol.md",
        notes="Every entry sees the same corrupted images: the draws are seeded by the "
        "protocol's seed (0), not the model's. The ranked figure is the balanced accuracy on "
        "each of the 110 (corruption, severity) pairs, averaged; per image, the share of its "
        "110 corrupted versions classified correctly. A randomized defense answers each "
        "corrupted image once, its draws seeded. Entries are ranked with a stratified "
        "sign-flip test on the per-image shares (Holm over the board's pairs).",
    ),
)
#: The corruption protocol the corruption boards rank by now.
CURRENT_CORRUPTION_PROTOCOL = MRB_CORRUPTION_V1


__all__ = [
    "CORRUPTION_PROTOCOLS",
    "CURRENT_CORRUPTION_PROTOCOL",
    "MRB_CORRUPTION_V1",
    "CorruptionProtocol",
    "configs_digest",
]
