"""Named corruption plans (``--corruptions PRESET``) and their parsing from a comma list."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.corruptions.base import CORRUPTIONS
from benchmark.corruptions.sequences import DEFAULT_FRAMES, SEQUENCE_IDS, SequenceType
from benchmark.corruptions.severity import SEVERITIES, SeverityCorruption
from benchmark.errors import ConfigError, UnknownNameError
from benchmark.registry import Registry, unknown_name_message
from benchmark.results.corruption_protocols import CORRUPTION_PROTOCOLS, CorruptionProtocol


@dataclass(frozen=True)
class CorruptionPlan:
    """What ``bench evaluate --corruptions`` runs.

    Attributes:
        sequences: registry ids of perturbation-sequence types (kind "sequence").
        sequence_severities: severities at which every sequence type runs.
        n_frames: frames per sequence, clean frame included.
        corruptions: registry ids of severity corruptions (kind "severity").
        severities: severities at which every severity corruption runs.
        description: one line for ``bench list corruption_presets``.
    """

    sequences: tuple[str, ...] = ()
    sequence_severities: tuple[int, ...] = (3,)
    n_frames: int = DEFAULT_FRAMES
    corruptions: tuple[str, ...] = ()
    severities: tuple[int, ...] = SEVERITIES
    description: str = ""

    @property
    def meta(self) -> CorruptionPlan:
        """The plan is its own registry metadata (``bench info`` shows every field)."""
        return self


CORRUPTION_PRESETS: Registry[CorruptionPlan] = Registry("corruption_preset")
"""Named corruption plans."""

_IMAGENET_C = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)  # fmt: skip
_MEDMNIST_C = (
    "pixelate", "jpeg_compression", "gaussian_noise", "speckle_noise", "impulse_noise",
    "shot_noise", "gaussian_blur", "brightness_up", "brightness_down", "contrast_up",
    "contrast_down", "gamma_corr_up", "gamma_corr_down",
)  # fmt: skip

CORRUPTION_PRESETS.register(
    "robust_benchmark",
    CorruptionPlan(
        sequences=SEQUENCE_IDS,
        description="Xu et al. Robust-Benchmark: the 14 sequence types at severity 3, 21 frames",
    ),
)
CORRUPTION_PRESETS.register(
    "robust_benchmark_full",
    CorruptionPlan(
        sequences=SEQUENCE_IDS,
        sequence_severities=SEVERITIES,
        description="The 14 sequence types at all five severities (5x the cost)",
    ),
)
CORRUPTION_PRESETS.register(
    "imagenet_c",
    CorruptionPlan(
        corruptions=_IMAGENET_C,
        description="ImageNet-C corruptions at severities 1-5 (glass blur left out: too slow)",
    ),
)
CORRUPTION_PRESETS.register(
    "medmnist_c",
    CorruptionPlan(
        corruptions=_MEDMNIST_C,
        description="MedMNIST-C's PneumoniaMNIST/ChestMNIST corruption set at severities 1-5",
    ),
)
CORRUPTION_PRESETS.register(
    "standard",
    CorruptionPlan(
        sequences=SEQUENCE_IDS,
        corruptions=tuple(dict.fromkeys(_IMAGENET_C + _MEDMNIST_C)),
        description="robust_benchmark + imagenet_c + medmnist_c (the leaderboard's set)",
    ),
)
CORRUPTION_PRESETS.register(
    "quick",
    CorruptionPlan(
        sequences=("gaussian_noise_seq", "brightness_seq", "rotate_seq"),
        n_frames=11,
        corruptions=("gaussian_noise", "contrast_down", "pixelate"),
        severities=(1, 3, 5),
        description="CPU smoke run: 3 sequence types (11 frames) and 3 corruptions at 1/3/5",
    ),
)


def protocol_plan(protocol: CorruptionProtocol) -> CorruptionPlan:
    """The corruption plan a corruption protocol fixes (its corruptions, severities and
    sequences; the protocol also fixes the images and the seed of the draws)."""
    return CorruptionPlan(
        sequences=protocol.sequences,
        sequence_severities=protocol.sequence_severities,
        n_frames=protocol.n_frames,
        corruptions=protocol.corruptions,
        severities=protocol.severities,
        description=protocol.description,
    )


def resolve_corruptions(spec: str) -> tuple[str, CorruptionPlan]:
    """A preset name, a corruption protocol id (``mrb_corruption_v1``: its plan), or a comma
    list of registered ids (``rotate_seq,pixelate``).

    Returns the plan's name ("custom" for a list) and the plan. Unknown names raise a one-line
    :class:`UnknownNameError` before any work.
    """
    spec = spec.strip()
    if spec in CORRUPTION_PRESETS:
        return spec, CORRUPTION_PRESETS.get(spec)
    if spec in CORRUPTION_PROTOCOLS:
        return spec, protocol_plan(CORRUPTION_PROTOCOLS.get(spec))
    sequences, corruptions = [], []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name not in CORRUPTIONS:
            raise UnknownNameError(
                unknown_name_message(
                    "corruption, corruption preset or corruption protocol",
                    name,
                    list(CORRUPTIONS) + list(CORRUPTION_PRESETS) + list(CORRUPTION_PROTOCOLS),
                    "bench list corruptions",
                )
            )
        entry = CORRUPTIONS.get(name)
        (sequences if isinstance(entry, SequenceType) else corruptions).append(name)
        if not isinstance(entry, SequenceType | SeverityCorruption):
            raise ConfigError(f"corruption '{name}' is neither a sequence nor a severity type")
    if not sequences and not corruptions:
        raise ConfigError("--corruptions is empty; name a preset or a comma list")
    return "custom", CorruptionPlan(sequences=tuple(sequences), corruptions=tuple(corruptions))
