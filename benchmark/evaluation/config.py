"""What an evaluation runs: :class:`EvaluationConfig`, its checks and the ``config`` block it
records in the results file.

The configuration is checked once, before any work (:meth:`EvaluationConfig.validate`); the
command line builds it from its raw option strings with :meth:`EvaluationConfig.from_options`,
which applies the same rules as a Python caller gets.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.attacks.presets import AttackCell, resolve_attack_cells
from benchmark.corruptions.presets import CorruptionPlan, resolve_corruptions
from benchmark.datasets.base import DATASETS, resolve_size
from benchmark.errors import ConfigError
from benchmark.evaluation.protocol_run import protocol_cells, protocol_defense_options
from benchmark.models.base import MODELS
from benchmark.params import parse_params
from benchmark.results.corruption_protocols import CORRUPTION_PROTOCOLS, CorruptionProtocol
from benchmark.results.naming import DEFENDED_PASSES, ThreatModel

if TYPE_CHECKING:
    import torch

    from benchmark.training import TrainConfig

#: How the adaptive pass differentiates a differentiable purifier (``--adaptive-gradient``).
ADAPTIVE_GRADIENTS = ("exact", "bpda")
#: Where attack passes are crafted (``--executor``).
EXECUTORS = ("local", "ray")
#: Fields of the configuration the recorded ``config`` block leaves out: the image size is
#: recorded resolved (``image_size``), the corruption plan through its suite name.
_NOT_RECORDED = ("size", "corruptions", "protocol")


@dataclass
class EvaluationConfig:
    """What to evaluate (recorded, fully resolved, in the result's ``config``).

    Attributes:
        dataset: registered dataset id.
        arch: registered model id.
        size: image size (default: the dataset's default size, see :attr:`resolved_size`).
        split: the split scored (``test`` for reported numbers).
        seed: seed of the model to load, the subset (unless ``subset_seed``), the attacks and
            the bootstrap CIs.
        batch_size: inference and attack batch size, or "auto": the largest of 256, 128, ...
            whose attack passes fit in the free memory (measured on a probe batch before any
            work; the resolved number is recorded). A number that would not fit is refused
            before any work, naming one that does (see ``benchmark/evaluation/memory.py``).
        device: "auto", "cpu" or "cuda[:N]".
        defense: submission id or folder of the defense to evaluate (None: undefended).
        defense_params: parameter overrides of the defense.
        threat_models: threat models the attacks run under with a defense ("oblivious",
            "adaptive"); without a defense attacks are white-box on the model.
        eot_samples: draws per forward pass of an adaptive attack on a randomized defense.
        adaptive_gradient: how the adaptive pass differentiates a preprocessing defense that
            declares itself differentiable: "exact" (autograd through it) or "bpda" (the
            identity, or its ``purify_approx``, on the backward pass; Athalye et al. 2018,
            Sec. 4.1). Unrolled solvers such as MDDA's TV iterations can give weak exact
            gradients; a "bpda" run is a second adaptive attack on the same entry, stored
            under the suite ``<preset>-bpda``. Non-differentiable defenses always use BPDA.
        attacks: the attack cells to run (empty: clean evaluation only).
        suite: name of the preset the cells come from ("custom" for a list).
        n_examples: evaluate a seeded random subset of this size (None: the whole split).
        subset_seed: seed of that subset (None: ``seed``). Giving every seed of a recipe the
            same subset seed scores their checkpoints on the same images, so their robust
            figures can be compared image by image (``--subset-seed``).
        sanity_attack: also run the large-eps sanity attacks at eps 64/255 (PGD-10; a
            protocol's own, PGD-10 and APGD-CE-100 from version 2).
        corruptions: the corruption plan to run (None: no corruption evaluation).
        corruption_suite: name of the corruption preset ("custom" for a list).
        corruption_reference: zoo model id of the reference model for RFP and CE (optional).
        protocol: id of the versioned protocol the attacks come from (``--protocol``; see
            ``docs/protocol.md``); recorded with its version and sha256 in the results.
        draws: how many times a randomized defense answers each scored image (``--draws``,
            worst-of-draws scoring: an image is correct only if every answer is; see
            :mod:`benchmark.evaluation.draws`); 1 for deterministic pipelines whatever is set.
    """

    dataset: str
    arch: str
    size: int | None = None
    split: str = "test"
    seed: int = 0
    batch_size: int | str = 256
    device: str = "auto"
    defense: str | None = None
    defense_params: dict[str, Any] = field(default_factory=dict)
    threat_models: list[str] = field(default_factory=lambda: [ThreatModel.OBLIVIOUS.value])
    eot_samples: int = 20
    adaptive_gradient: str = "exact"
    attacks: list[AttackCell] = field(default_factory=list)
    suite: str | None = None
    n_examples: int | None = None
    subset_seed: int | None = None
    sanity_attack: bool = True
    corruptions: CorruptionPlan | None = None
    corruption_suite: str | None = None
    corruption_reference: str | None = None
    protocol: str | None = None
    draws: int = 1

    @classmethod
    def from_options(
        cls,
        *,
        dataset: str,
        arch: str,
        attacks: str | None = None,
        eps: Sequence[str] = (),
        attack_params: Sequence[str] = (),
        defense: str | None = None,
        defense_params: Sequence[str] = (),
        threat_models: Sequence[str] = (ThreatModel.OBLIVIOUS.value,),
        eot_samples: int = 20,
        adaptive_gradient: str = "exact",
        corruptions: str | None = None,
        corruption_reference: str | None = None,
        n_examples: int | None = None,
        subset_seed: int | None = None,
        size: int | None = None,
        split: str = "test",
        seed: int = 0,
        batch_size: str | int = "256",
        device: str = "auto",
        sanity_attack: bool = True,
        executor: str = "local",
        use_cache: bool = True,
        protocol: str | None = None,
        draws: int = 1,
    ) -> EvaluationConfig:
        """A validated configuration from the command line's raw options.

        Args:
            dataset: ``--dataset``.
            arch: ``--model``.
            attacks: ``--attacks``: a preset or a comma list of attack ids.
            eps: ``--eps`` items, each a comma list (``2/255,8/255``).
            attack_params: ``--attack-param`` items (``pgd.steps=20`` or ``steps=20``).
            defense: ``--defense``: a submission id or folder.
            defense_params: ``--defense-param`` items (``name=value``).
            threat_models: ``--threat-model`` items, each a comma list.
            eot_samples: ``--eot-samples``.
            adaptive_gradient: ``--adaptive-gradient``.
            corruptions: ``--corruptions``: a corruption preset or a comma list.
            corruption_reference: ``--corruption-reference``.
            n_examples: ``--n-examples``.
            subset_seed: ``--subset-seed``.
            size: ``--size``.
            split: ``--split``.
            seed: ``--seed``.
            batch_size: ``--batch-size``: a positive integer or ``auto``.
            device: ``--device``.
            sanity_attack: ``--sanity-attack/--no-sanity-attack``.
            executor: ``--executor``: checked here, not recorded (it does not change results).
            use_cache: False for ``--no-cache``: checked against the executor, not recorded.
            protocol: ``--protocol``: a registered protocol id; it fixes the attacks, their
                budgets and the images (the whole split), so it excludes ``attacks``, ``eps``,
                ``attack_params``, ``n_examples`` and a split other than its own.
            draws: ``--draws``.

        Returns:
            The configuration, checked by :meth:`validate`.

        Raises:
            ConfigError: a bad option, with one line naming it and the fix.
        """
        if protocol is not None:
            suite, cells, sanity_attack = protocol_cells(
                protocol,
                attacks=attacks,
                eps=eps,
                attack_params=attack_params,
                n_examples=n_examples,
                split=split,
                sanity_attack=sanity_attack,
                subset_seed=subset_seed,
            )
            threat_models, eot_samples, draws = protocol_defense_options(
                protocol,
                defense=defense,
                threat_models=threat_models,
                eot_samples=eot_samples,
                draws=draws,
            )
        else:
            suite, cells = resolve_attack_cells(attacks, eps, attack_params)
        corruption_suite, plan = resolve_corruptions(corruptions) if corruptions else (None, None)
        if corruption_reference and plan is None:
            raise ConfigError("--corruption-reference needs --corruptions")
        config = cls(
            dataset=dataset,
            arch=arch,
            size=size,
            split=split,
            seed=seed,
            batch_size=parse_batch_size(batch_size),
            device=device,
            attacks=cells,
            suite=suite,
            n_examples=n_examples,
            subset_seed=subset_seed,
            sanity_attack=sanity_attack,
            corruptions=plan,
            corruption_suite=corruption_suite,
            corruption_reference=corruption_reference,
            defense=defense,
            defense_params=parse_params(defense_params),
            threat_models=[t for item in threat_models for t in item.split(",") if t],
            eot_samples=eot_samples,
            adaptive_gradient=adaptive_gradient,
            protocol=protocol,
            draws=draws,
        )
        check_executor(executor, use_cache)
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse a configuration that cannot run, before any work.

        Checks everything that needs neither the data nor the loaded defense: the batch size,
        the dataset and model ids, the threat models, the adaptive gradient, the subset size
        and the corruption reference. The defense's own parameters and kind are checked when
        it is loaded (:func:`benchmark.evaluation.plan.build_plan`).

        Raises:
            ConfigError: one line naming the problem and the fix (an unknown dataset or model
                id raises :class:`~benchmark.errors.UnknownNameError`).
        """
        bs = self.batch_size
        if bs != "auto" and (isinstance(bs, bool) or not isinstance(bs, int) or bs < 1):
            raise ConfigError(f"--batch-size must be a positive integer or auto, got {bs!r}")
        DATASETS.get(self.dataset)
        MODELS.get(self.arch)
        if self.defense is not None:
            bad = [t for t in self.threat_models if t not in DEFENDED_PASSES]
            if bad or not self.threat_models:
                raise ConfigError(
                    f"--threat-model must be oblivious and/or adaptive, got {', '.join(bad)}; "
                    "transfer and black_box come from the attacks (transfer, square, spsa, rays)"
                )
        self._validate_adaptive_gradient()
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise ConfigError(f"--draws must be a positive integer, got {self.draws!r}")
        if self.n_examples is not None and self.n_examples < 1:
            raise ConfigError(f"--n-examples must be >= 1, got {self.n_examples}")
        if self.subset_seed is not None and self.n_examples is None:
            raise ConfigError(
                "--subset-seed needs --n-examples (the whole split has no subset to seed)"
            )
        if self.corruption_reference and self.corruptions is None:
            raise ConfigError("--corruption-reference needs --corruptions")
        protocol = self.corruption_protocol
        if protocol is not None:
            fixed = {
                "--n-examples": self.n_examples is not None,
                f"--split {self.split}": self.split != protocol.split,
            }
            if DATASETS.get(self.dataset).meta.multi_label:
                raise ConfigError(
                    f"--corruptions {protocol.id} ranks single-label tasks only ({self.dataset} "
                    "is multi-label): use a corruption preset for an exploratory run"
                )
            clashes = [name for name, given in fixed.items() if given]
            if clashes:
                raise ConfigError(
                    f"--corruptions {protocol.id} scores the whole {protocol.split} split: drop "
                    f"{', '.join(clashes)} (or use a corruption preset for an exploratory run)"
                )

    @property
    def corruption_protocol(self) -> CorruptionProtocol | None:
        """The corruption protocol the run follows (``--corruptions mrb_corruption_v1``; see
        :mod:`benchmark.results.corruption_protocols`), None for a preset or a list."""
        name = self.corruption_suite
        return CORRUPTION_PROTOCOLS.get(name) if name in CORRUPTION_PROTOCOLS else None

    @property
    def corruption_seed(self) -> int:
        """Seed of the corruption draws: a corruption protocol's own (the same images for every
        entry whatever the model's seed), else the run's seed."""
        protocol = self.corruption_protocol
        return protocol.seed if protocol is not None else self.seed

    def _validate_adaptive_gradient(self) -> None:
        """A forced-BPDA adaptive pass needs a defense and the adaptive threat model (that
        the defense is a preprocessing one is checked once it is loaded)."""
        if self.adaptive_gradient not in ADAPTIVE_GRADIENTS:
            raise ConfigError(
                f"--adaptive-gradient must be exact or bpda, got {self.adaptive_gradient!r}"
            )
        if self.adaptive_gradient == "exact":
            return
        if self.defense is None:
            raise ConfigError(BPDA_NEEDS_PREPROCESSING)
        if ThreatModel.ADAPTIVE.value not in self.threat_models:
            raise ConfigError("--adaptive-gradient bpda needs --threat-model adaptive")

    @property
    def resolved_size(self) -> int:
        """The image size: :attr:`size`, else the dataset's default."""
        return resolve_size(self.dataset, self.size)

    @property
    def images_seed(self) -> int:
        """The seed of the ``--n-examples`` subset: :attr:`subset_seed`, else :attr:`seed`."""
        return self.seed if self.subset_seed is None else self.subset_seed

    @property
    def bpda_always(self) -> bool:
        """Whether the adaptive pass uses BPDA even through a differentiable purifier."""
        return self.adaptive_gradient == "bpda"

    @property
    def threat_model(self) -> str:
        """ "clean" without attacks; "white-box" on an undefended model; else the defended
        threat models joined by "+"."""
        if not self.attacks:
            return "clean"
        return "+".join(self.threat_models) if self.defense else ThreatModel.WHITE_BOX.value

    @property
    def pass_threat_models(self) -> list[str]:
        """The attack passes: the defended threat models, or one white-box pass."""
        if self.defense is None:
            return [ThreatModel.WHITE_BOX.value]
        return list(self.threat_models)

    def train_config(self, epochs: int = 100) -> TrainConfig:
        """The MedMNIST v2 recipe that trains this configuration's model when the zoo lacks it
        (``--train-if-missing``): same dataset, architecture, image size, seed and device."""
        from benchmark.training import TrainConfig

        return TrainConfig(
            dataset=self.dataset,
            arch=self.arch,
            size=self.resolved_size,
            epochs=epochs,
            seed=self.seed,
            device=self.device,
        )

    def portable(self, device: torch.device | str) -> EvaluationConfig:
        """The configuration as a worker must see it: the driver's resolved device (a worker
        without it fails loudly instead of crafting elsewhere) and an absolute defense
        folder."""
        defense = self.defense
        if defense is not None and Path(defense).is_dir():
            defense = str(Path(defense).resolve())
        return replace(self, device=str(device), defense=defense)

    def record(self, *, defense_id: str | None, model_id: str, device: Any) -> dict[str, Any]:
        """The ``config`` block of the results file: every field, resolved.

        Args:
            defense_id: the loaded submission's id (None undefended); recorded instead of the
                folder the defense was loaded from.
            model_id: zoo id of the evaluated (base) model.
            device: the device the run used.

        Returns:
            The fields except the image size and the corruption plan, with the attacks as
            cell ids, then ``image_size``, ``model_id`` and ``threat_model``.
        """
        out = {
            f.name: copy.deepcopy(getattr(self, f.name))
            for f in fields(self)
            if f.name not in _NOT_RECORDED
        }
        out.update(
            device=str(device),
            defense=defense_id,
            attacks=[c.cell_id for c in self.attacks],
            image_size=self.resolved_size,
            model_id=model_id,
            threat_model=self.threat_model,
        )
        return out


BPDA_NEEDS_PREPROCESSING = (
    "--adaptive-gradient bpda applies to a preprocessing defense (--defense ID): "
    "wrappers and trained models have no purifier to approximate"
)


def parse_batch_size(text: str | int) -> int | str:
    """``--batch-size``: a positive integer or ``auto``.

    Raises:
        ConfigError: anything else.
    """
    text = str(text).strip().lower()
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"--batch-size must be a positive integer or auto, got '{text}'")
    return value


def check_executor(executor: str, use_cache: bool) -> None:
    """``--executor`` is local or ray, and ray hands its work over through the cache.

    Raises:
        ConfigError: an unknown executor, or ray with the cache off.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be local or ray, got '{executor}'")
    if not use_cache and executor == "ray":
        raise ConfigError("--executor ray hands work over through the cache: drop --no-cache")


__all__ = [
    "ADAPTIVE_GRADIENTS",
    "EXECUTORS",
    "EvaluationConfig",
    "check_executor",
    "parse_batch_size",
]
