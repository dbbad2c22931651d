"""Transfer attacks: craft on a surrogate model, evaluate on the victim (MDDA Sec. 4.3).

``transfer`` runs any registered attack (``base_attack`` with ``base_params``, a JSON object)
against a surrogate architecture trained on the same dataset, size and seed (loaded from the
model zoo in :meth:`prepare`), and hands the resulting images to the victim. The victim's
gradients and outputs are never used, so a white-box attack on the victim should be at least
as strong; the sanity checks compare the two.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor

from benchmark.attacks.base import (
    ATTACKS,
    Attack,
    AttackContext,
    AttackError,
    AttackMeta,
    register_attack,
)


def base_params(value: Any) -> dict[str, Any]:
    """A transfer cell's ``base_params``: a JSON object as text (the presets) or already
    decoded (``--attack-param transfer.base_params={...}`` decodes JSON values)."""
    if isinstance(value, dict):
        return dict(value)
    try:
        decoded = json.loads(value or "{}")
    except (json.JSONDecodeError, TypeError) as exc:
        raise AttackError(f"transfer: base_params must be a JSON object ({exc})") from exc
    if not isinstance(decoded, dict):
        raise AttackError(f"transfer: base_params must be a JSON object, got {value!r}")
    return decoded


@register_attack(
    "transfer",
    AttackMeta(
        description="Transfer attack: craft with base_attack on a surrogate zoo model (MDDA 4.3)",
        knowledge="transfer",
        reference="mdda_wang2023.md Sec. 4.3",
        multi_label=True,
    ),
)
class TransferAttack(Attack):
    """Black-box transfer from a surrogate; needs :meth:`prepare` to load the surrogate."""

    defaults = {
        "surrogate": "resnet50",
        "surrogate_seed": None,
        "base_attack": "pgd",
        "base_params": "{}",
    }

    def setup(self) -> None:
        base = self.params["base_attack"]
        if base == "transfer":
            raise AttackError("transfer: base_attack cannot be 'transfer'")
        meta = ATTACKS.get(base).meta
        self.base_params = base_params(self.params["base_params"])
        # one spelling in config() (and the cache key) whether given as text or an object
        self.params["base_params"] = json.dumps(self.base_params, sort_keys=True)
        self.norm, self.bounded = meta.norm, meta.bounded
        self.inner: Attack | None = None

    def surrogate_id(self, context: AttackContext) -> str:
        from benchmark.models.zoo import model_id

        seed = self.params["surrogate_seed"]
        return model_id(
            self.params["surrogate"],
            context.dataset,
            context.size,
            context.seed if seed is None else int(seed),
        )

    def validate(self, context: AttackContext) -> None:
        """Refuse a missing surrogate, or one that is the attacked model itself (that would
        be a white-box attack under a transfer label), before any work; the surrogate's
        checkpoint sha256 then becomes part of :meth:`config` (and of the cache key)."""
        from benchmark.models.zoo import ModelZoo

        mid = self.surrogate_id(context)
        sha = ModelZoo(context.zoo_root).entry(mid).card["checkpoint"]["sha256"]
        if context.model_sha256 and sha == context.model_sha256:
            raise AttackError(
                f"transfer: the surrogate '{mid}' is the attacked model itself, so the cell "
                "would be white-box; pick another architecture or seed with --attack-param "
                "transfer.surrogate=ARCH or transfer.surrogate_seed=N"
            )
        self.surrogate_sha256 = sha

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        sha = getattr(self, "surrogate_sha256", None)
        if sha:
            cfg["params"]["surrogate_sha256"] = sha
        return cfg

    def prepare(self, context: AttackContext) -> None:
        """Load the surrogate from the zoo and build the base attack against it."""
        from benchmark.models.zoo import ModelZoo

        mid = self.surrogate_id(context)
        surrogate, _ = ModelZoo(context.zoo_root).load(
            mid,
            device=next(self.model.parameters()).device,
            expect={"dataset": context.dataset, "image_size": context.size},
        )
        self.surrogate_id = mid
        self.inner = ATTACKS.get(self.params["base_attack"])(
            surrogate, eps=self.eps, seed=self.seed, **self.base_params
        )

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        if self.inner is None:
            raise AttackError("transfer needs its surrogate: run it through `bench evaluate`")
        # The batch's seed (the outer call seeded torch's generator with it) fixes the inner
        # attack's randomness too, so batches do not share one random start.
        return self.inner(x, y, seed=int(torch.randint(0, 2**31 - 1, (1,)).item()))
