"""The zoo's published recipes: one definition of what trains a board's models, read by the
protocol campaign (``benchmarks/protocol_campaign.py``) and checked against the model cards.

* **Standard** (:func:`standard_config`): the MedMNIST v2 recipe (Yang et al. 2023, Sec. 4:
  Adam, lr 1e-3, batch 128, lr x0.1 at half and three quarters of the epochs, best validation
  AUC), with the epoch budget the CPU allowed per dataset (:data:`STANDARD_EPOCHS`; MedMNIST v2
  trains 100; ``docs/model_zoo.md`` compares the scores).
* **Robust** (:func:`robust_config`): adversarial fine-tuning of the standard model of the same
  seed, 12 epochs at lr 1e-4 (x0.1 at epochs 6 and 9), the epoch kept by the best validation
  balanced accuracy under PGD-4 at the training eps (4/255 for MPAdvT, which has no single
  training eps) among the epochs whose clean validation balanced accuracy is above chance
  (:mod:`benchmark.training.selection`). The inner attack is 7 PGD steps at the training eps
  for PGD-AT and for its TRADES, MART and MAAdvT variants, with step 2.5 eps / 7 (Madry et
  al. 2018, Sec. 5, take 7 steps of eps / 4 on CIFAR-10);
  TRADES and MART use 10 steps in their papers, and one inner attack across the variants
  makes their gaps the loss's, not the inner attack's. MPAdvT samples its own eps and steps
  per minibatch (Xu et al. 2021, Sec. 4.5, Algorithm 1). The training eps is 8/255 except on
  RetinaMNIST and BreastMNIST, where PGD-based recipes at 8/255 collapsed to chance-level
  validation balanced accuracy and 2/255 did not (RetinaMNIST: every one; BreastMNIST: two of
  the three PGD-AT seeds, whose validation balanced accuracy under the selection attack never
  rose above a constant answer's 50 %; :data:`TRAINING_EPS`; ``docs/defenses.md``).

A model id names the architecture, dataset, size, seed and defense parameters, not the
epochs or the selection rule: an older recipe's model may share a new recipe's id (the MPAdvT
fine-tunes of 2, 5 and 10 epochs are ``..._mpadvt`` like the 12-epoch recipe's). Its card and
checkpoint sha256 tell them apart: :func:`card_recipe_mismatches` names how a card departs
from its recipe (the campaign refuses such a model, the zoo page and the site mark it),
``bench zoo cards`` refuses to replace a committed card with other weights, and every result
records the sha256 it scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from benchmark.datasets.base import resolve_size
from benchmark.errors import ConfigError
from benchmark.models.zoo import model_id
from benchmark.results.cards import RECIPE_FIELDS, recipe_of
from benchmark.training.config import TrainConfig
from benchmark.training.defense import defense_tag
from benchmark.training.selection import selection_description

#: Epochs of the standard recipe per dataset (MedMNIST v2 trains 100; this CPU's budget).
STANDARD_EPOCHS: dict[str, int] = {
    "breastmnist": 30,
    "pneumoniamnist": 10,
    "retinamnist": 20,
    "ham10000_220": 30,
}
#: Architectures whose standard recipe has its own epoch budget on every dataset: the smoke-test
#: CNN (``tiny_cnn``, not a board architecture) trains 20.
ARCH_EPOCHS: dict[str, int] = {"tiny_cnn": 20}
#: The image size of each dataset's recipe.
SIZES: dict[str, int] = {"ham10000_220": 128}
#: Seeds of every recipe (issue 22: three per recipe, so a gap can be told from training noise).
SEEDS: tuple[int, ...] = (0, 1, 2)
#: Seeds that stand in for a robust recipe's missing ones. Seed s fine-tunes the standard model
#: of seed s, and the published ResNet-18 standard models of :data:`SEEDS` were trained with
#: unpinned kernels on an Intel Xeon: no other machine (another vendor's CPU, a GPU) can
#: retrain their weights, so a robust seed from them can only be trained there. A spare seed's
#: standard model is trained wherever its robust seeds are (``--cpu-isa avx2`` on the CPU), and
#: any three seeds count.
SPARE_SEEDS: tuple[int, ...] = (3, 4, 5)
#: The robust fine-tune: epochs and learning rate.
ROBUST_EPOCHS = 12
ROBUST_LR = 1e-4
#: Steps of the inner PGD attack of the PGD-based recipes, and of the selection attack.
INNER_STEPS = 7
SELECT_STEPS = 4
#: The training eps per dataset where it is not 8/255.
DEFAULT_TRAINING_EPS = 8 / 255
TRAINING_EPS: dict[str, float] = {"retinamnist": 2 / 255, "breastmnist": 2 / 255}
#: Training-time defenses trained with an inner PGD attack at the training eps.
PGD_BASED = ("pgd_at", "trades", "mart", "maadvt")
#: Training-time defenses whose own parameters set the inner attack.
OWN_BUDGET = ("mpadvt",)
#: The robust recipes' defenses, in the campaign's order.
ROBUST_DEFENSES = PGD_BASED + OWN_BUDGET
#: Selection eps of a recipe whose defense sets its own budget (Xu et al. Table 5's 4/255).
OWN_BUDGET_SELECT_EPS = 4 / 255
#: Sensitivity entries of the boards: a robust recipe with defense parameters added to the
#: recipe's, per dataset (TRADES at beta = 1 beside its paper's 6 on PneumoniaMNIST).
SENSITIVITY_ENTRIES: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "pneumoniamnist": (("trades", {"beta": 1}),)
}
#: The zoo's target (issue 22): the architectures trained with the standard recipe per dataset
#: (the seed papers' ResNet-50, VGG-16, DenseNet-121 and MobileNetV2 beside ResNet-18 on the
#: MedMNIST sets; ResNet-18 and ResNet-50 on the 128 px dermoscopy set), three seeds each.
MEDMNIST_ARCHS: tuple[str, ...] = (
    "resnet18",
    "resnet50",
    "vgg16_bn",
    "densenet121",
    "mobilenet_v2",
)
ZOO_ARCHS: dict[str, tuple[str, ...]] = {
    "breastmnist": MEDMNIST_ARCHS,
    "pneumoniamnist": MEDMNIST_ARCHS,
    "retinamnist": MEDMNIST_ARCHS,
    "ham10000_220": ("resnet18", "resnet50"),
}
#: The datasets whose L-inf boards rank the robust recipes (of ResNet-18), three seeds each.
ROBUST_DATASETS: tuple[str, ...] = ("breastmnist", "pneumoniamnist", "retinamnist")
ROBUST_ARCH = "resnet18"


def _size(dataset: str) -> int:
    if dataset not in STANDARD_EPOCHS:
        raise ConfigError(
            f"no published recipe for dataset {dataset!r}; known: {', '.join(STANDARD_EPOCHS)}"
        )
    return SIZES.get(dataset, 28)


def training_eps(dataset: str) -> float:
    """The robust recipes' training eps on ``dataset``."""
    _size(dataset)
    return TRAINING_EPS.get(dataset, DEFAULT_TRAINING_EPS)


def standard_config(dataset: str, arch: str = "resnet18", seed: int = 0) -> TrainConfig:
    """The standard recipe of ``arch`` on ``dataset`` with ``seed``."""
    return TrainConfig(
        dataset=dataset,
        arch=arch,
        size=_size(dataset),
        epochs=ARCH_EPOCHS.get(arch, STANDARD_EPOCHS[dataset]),
        seed=seed,
    )


def robust_params(dataset: str, defense: str) -> dict[str, Any]:
    """The defense parameters of ``defense``'s robust recipe on ``dataset`` (they name the
    model: ``steps=7``, or ``eps=...,steps=7`` where the training eps is not 8/255)."""
    if defense in OWN_BUDGET:
        _size(dataset)
        return {}
    if defense not in PGD_BASED:
        raise ConfigError(
            f"no robust recipe for defense {defense!r}; known: {', '.join(ROBUST_DEFENSES)}"
        )
    eps = training_eps(dataset)
    params: dict[str, Any] = {"steps": INNER_STEPS}
    if eps != DEFAULT_TRAINING_EPS:
        params["eps"] = eps
    return params


def robust_config(
    dataset: str,
    defense: str,
    arch: str = "resnet18",
    seed: int = 0,
    extra_params: dict[str, Any] | None = None,
) -> TrainConfig:
    """The robust recipe of ``defense`` for ``arch`` on ``dataset``: a fine-tune of the
    standard model of the same seed (:func:`standard_config`, whose zoo id it starts from).
    ``extra_params`` add to (or override) the recipe's defense parameters, e.g. a TRADES
    ``beta`` sensitivity entry; they are part of the model id like the others."""
    params = {**robust_params(dataset, defense), **(extra_params or {})}
    size = _size(dataset)
    return TrainConfig(
        dataset=dataset,
        arch=arch,
        size=size,
        epochs=ROBUST_EPOCHS,
        lr=ROBUST_LR,
        seed=seed,
        defense=defense,
        defense_params=params,
        selection="robust",
        select_eps=training_eps(dataset) if defense in PGD_BASED else OWN_BUDGET_SELECT_EPS,
        select_steps=SELECT_STEPS,
        init_from=model_id(arch, dataset, size, seed),
    )


@dataclass(frozen=True)
class TargetRecipe:
    """One recipe of the zoo's target: its label (the model id without the seed), kind
    (``standard`` or ``robust``), dataset, architecture, defense (None: standard), the zoo
    ids of its seeds (:data:`SEEDS`) with the config that trains each, and the spare seeds
    that count in their place (:data:`SPARE_SEEDS`, robust recipes): as many seeds as
    ``seeds`` holds are wanted, of either."""

    label: str
    kind: str
    dataset: str
    arch: str
    defense: str | None
    seeds: tuple[tuple[int, str, TrainConfig], ...]
    spares: tuple[tuple[int, str, TrainConfig], ...] = ()


def zoo_target() -> list[TargetRecipe]:
    """The recipes the zoo should hold, three seeds each: the standard recipe of every
    architecture of :data:`ZOO_ARCHS`, then the robust recipes on the boards (every defense of
    :data:`ROBUST_DEFENSES` and the :data:`SENSITIVITY_ENTRIES` on :data:`ROBUST_DATASETS`),
    whose :data:`SPARE_SEEDS` may stand in for their :data:`SEEDS`."""
    out: list[TargetRecipe] = []

    def add(kind: str, configs: list[TrainConfig], spares: Sequence[TrainConfig] = ()) -> None:
        first = configs[0]
        label = recipe_of({"model_id": recipe_model_id(first)})
        seeds, extra = (
            tuple((c.seed, recipe_model_id(c), c) for c in cs) for cs in (configs, spares)
        )
        out.append(
            TargetRecipe(label, kind, first.dataset, first.arch, first.defense, seeds, extra)
        )

    for dataset, archs in ZOO_ARCHS.items():
        for arch in archs:
            add("standard", [standard_config(dataset, arch, s) for s in SEEDS])
    for dataset in ROBUST_DATASETS:
        entries = [(d, {}) for d in ROBUST_DEFENSES] + list(SENSITIVITY_ENTRIES.get(dataset, ()))
        for defense, extra in entries:
            configs = [
                robust_config(dataset, defense, ROBUST_ARCH, s, dict(extra))
                for s in SEEDS + SPARE_SEEDS
            ]
            add("robust", configs[: len(SEEDS)], configs[len(SEEDS) :])
    return out


def recipe_model_id(config: TrainConfig) -> str:
    """The zoo id a recipe's training writes (the defense id is the submission's name)."""
    tag = defense_tag(config.defense, config.defense_params) if config.defense else None
    size = resolve_size(config.dataset, config.size)
    return model_id(config.arch, config.dataset, size, config.seed, tag)


#: The card ``recipe`` fields a published recipe fixes: those the seeds of one recipe share
#: (:data:`~benchmark.results.cards.RECIPE_FIELDS`) that a :class:`TrainConfig` sets (its
#: ``selection`` is a rule name; the card's text is compared on its own), then the seed and
#: the starting model.
_CARD_FIELDS = (
    *(f for f in RECIPE_FIELDS if f in {c.name for c in fields(TrainConfig)} and f != "selection"),
    "seed",
    "init_from",
)


def _plain(value: Any) -> Any:
    """A config value as a card's JSON holds it (tuples as lists, dicts copied)."""
    if isinstance(value, (tuple, list)):
        return list(value)
    return dict(value) if isinstance(value, dict) else value


def _same_value(a: Any, b: Any) -> bool:
    """Equal, numbers to 1e-9."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-9
    return a == b


def recipe_mismatches(
    card_recipe: dict[str, Any], config: TrainConfig
) -> list[tuple[str, Any, Any]]:
    """How a model card's ``recipe`` departs from ``config``, as (field, card value, recipe
    value) triples (empty: it is that recipe): the training settings, the starting model and
    the selection rule (its attack's eps and steps only where the rule is the robust one); a
    top-level float to 1e-9, the defense parameters exactly (the card keeps them as given)."""
    out: list[tuple[str, Any, Any]] = []
    robust_rule = config.selection_rule == "robust"
    for name in _CARD_FIELDS:
        value, got = _plain(getattr(config, name)), _plain(card_recipe.get(name))
        if name == "defense_params":
            got = got or {}
        if not _same_value(got, value) and (
            robust_rule or name not in ("select_eps", "select_steps")
        ):
            out.append((name, got, value))
    rule = selection_description(config)
    if card_recipe.get("selection") != rule:
        out.append(("selection", card_recipe.get("selection"), rule))
    return out


def standard_departures(config: TrainConfig) -> list[str]:
    """Where a standard (undefended, from scratch) training config departs from the zoo's
    standard recipe in epochs or image size, as ``--epochs 100 (the recipe's: 30)`` phrases;
    empty for a config of the recipe, for a dataset without one, or for a robust or
    fine-tuned config (:func:`robust_config` sets those)."""
    if config.defense or config.init_from or config.dataset not in STANDARD_EPOCHS:
        return []
    want = standard_config(config.dataset, config.arch, config.seed)
    out = []
    if config.epochs != want.epochs:
        out.append(f"--epochs {config.epochs} (the recipe's: {want.epochs})")
    size = resolve_size(config.dataset, config.size)
    if size != want.size:
        out.append(f"--size {size} (the recipe's: {want.size})")
    return out


def format_mismatches(mismatches: list[tuple[str, Any, Any]]) -> list[str]:
    """Mismatch triples as ``field: card value != recipe value`` lines."""
    return [f"{name}: card {got!r} != recipe {want!r}" for name, got, want in mismatches]


#: Defense parameters a board entry may set beside the recipe's, as a sensitivity entry of its
#: own (the campaign's TRADES beta = 1 on PneumoniaMNIST); any other departure from the
#: recipe's parameters in force is a departure from the recipe.
SENSITIVITY_PARAMS: dict[str, tuple[str, ...]] = {"trades": ("beta",)}


def card_recipe_mismatches(card: dict[str, Any]) -> list[tuple[str, Any, Any]] | None:
    """How a model card departs from the published recipe of its kind (standard, or robust
    with its defense), as :func:`recipe_mismatches` triples; None where no recipe covers it (a
    dataset or defense without one). A robust card's defense parameters are compared as they
    were in force (the card's ``defense.params``, defaults included) against the recipe's
    (the submission's defaults with the recipe's overrides): an override equal to a default
    is no departure, and a changed step size, start or MPAdvT budget is one. Only the
    parameters of :data:`SENSITIVITY_PARAMS` may differ, as the entry's own."""
    from benchmark.defenses.base import SubmissionError
    from benchmark.defenses.submissions import load_submission

    r = card.get("recipe") or {}
    try:
        if not r.get("defense"):
            return recipe_mismatches(r, standard_config(r["dataset"], r["arch"], r["seed"]))
        defense = r["defense"]
        defaults = load_submission(defense).params
        in_force = dict((card.get("defense") or {}).get("params") or {})
        extra = {
            k: in_force[k]
            for k in SENSITIVITY_PARAMS.get(defense, ())
            if k in in_force and not _same_value(in_force[k], defaults.get(k))
        }
        config = robust_config(r["dataset"], defense, r["arch"], r["seed"], extra)
    except (ConfigError, SubmissionError, KeyError):
        return None
    # The parameters in force replace the comparison of the overrides as written, in place.
    want = {**defaults, **config.defense_params}
    differ = [
        k
        for k in sorted(set(want) | set(in_force))
        if not _same_value(in_force.get(k), want.get(k))
    ]
    out = [m for m in recipe_mismatches(r, config) if m[0] != "defense_params"]
    if differ:
        out.append(
            (
                "defense_params",
                {k: in_force.get(k) for k in differ},
                {k: want.get(k) for k in differ},
            )
        )
    order = [*_CARD_FIELDS, "selection"]
    return sorted(out, key=lambda m: order.index(m[0]))


__all__ = [
    "INNER_STEPS",
    "MEDMNIST_ARCHS",
    "ROBUST_DATASETS",
    "ROBUST_DEFENSES",
    "ROBUST_EPOCHS",
    "SEEDS",
    "SENSITIVITY_ENTRIES",
    "SENSITIVITY_PARAMS",
    "SPARE_SEEDS",
    "STANDARD_EPOCHS",
    "TRAINING_EPS",
    "ZOO_ARCHS",
    "TargetRecipe",
    "card_recipe_mismatches",
    "format_mismatches",
    "recipe_mismatches",
    "recipe_model_id",
    "robust_config",
    "robust_params",
    "standard_config",
    "standard_departures",
    "training_eps",
    "zoo_target",
]
