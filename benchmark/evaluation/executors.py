"""Where the attack passes of an evaluation are crafted.

The default is this process, one pass after the other. :class:`RayExecutor` fans the passes
out to a Ray cluster: each task rebuilds the evaluation plan from its configuration exactly as
:func:`~benchmark.evaluation.runner.evaluate` does (same seeds, same cache keys), crafts one
pass (:func:`craft_pass`) and writes its adversarial examples to the
cache; the driver then runs the evaluation as usual and finds every pass there. The results
file, the cache semantics and resuming are therefore those of a local run: a pass already
cached is a no-op on the worker, and an interrupted fan-out leaves the finished passes cached.

On a multi-machine cluster the data folder, the model zoo and the cache folder must be the same
paths on every node (a shared file system such as NFS); each task loads the zoo's checkpoint
and checks its sha256 before any work.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.evaluation.config import EvaluationConfig

logger = logging.getLogger(__name__)


def craft_pass(
    config: EvaluationConfig,
    index: int,
    *,
    data_dir: Any = None,
    zoo_root: Any = None,
    cache_root: Any = None,
) -> bool:
    """Craft (or find cached) the adversarial examples of attack pass ``index`` of an
    evaluation and store them in the cache: the unit of work an executor sends to a worker.

    The plan is rebuilt from ``config`` (a :meth:`EvaluationConfig.portable` one, its batch
    size resolved) exactly as :func:`~benchmark.evaluation.runner.evaluate` builds it, so the
    examples and their cache key are the ones a local run computes.

    Returns:
        Whether the examples were already cached.
    """
    from benchmark.device import seed_everything
    from benchmark.evaluation.adversarial import craft_cell
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.plan import build_plan
    from benchmark.models.zoo import ModelZoo

    zoo, cache = ModelZoo(zoo_root), AdversarialCache(cache_root)
    plan = build_plan(config, data_dir=data_dir, zoo=zoo, cache=cache, progress=False)
    try:
        p = plan.passes[index]
        seed_everything(config.seed)
        _, cached = craft_cell(**plan.cell_arguments(p), cache=cache, progress=False)
    finally:
        plan.close()
    return cached


def _craft_remote(config: Any, index: int, data_dir: Any, zoo_root: str, cache_root: str) -> bool:
    return craft_pass(config, index, data_dir=data_dir, zoo_root=zoo_root, cache_root=cache_root)


class RayExecutor:
    """Craft attack passes as Ray tasks.

    Args:
        address: the cluster to join: None starts a local Ray on this machine's cores (or
            joins the one ``$RAY_ADDRESS`` names, as ``ray.init`` does), "auto" joins the
            cluster this machine belongs to (``ray start --head`` / ``ray start
            --address=...``), "ray://host:10001" a remote cluster through Ray Client.
        num_cpus: CPUs per task (default 1); torch in a task uses that many threads.
        num_gpus: GPUs per task (e.g. 1, or 0.5 to share one); the evaluation's resolved
            device travels with the configuration, so a CUDA run on workers without a GPU
            fails loudly instead of crafting on the CPU.
        init_kwargs: more arguments for ``ray.init`` (e.g. ``runtime_env``).

    Floating-point results can differ in the last bits from a local run when the thread count
    differs (Ray runs a task with ``num_cpus`` threads); seeds and cache keys are the same.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int = 1,
        num_gpus: float = 0,
        **init_kwargs: Any,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(
                "--executor ray needs Ray: pip install 'ray>=2.9' (or the project's dev extra)"
            ) from exc
        self.ray = ray
        self.num_cpus = num_cpus
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, **init_kwargs)
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_craft_remote)

    def craft(self, config: Any, n_passes: int, *, data_dir: Any, zoo: Any, cache: Any) -> None:
        """Craft passes ``0 .. n_passes - 1`` of ``config`` on the cluster; returns when every
        task has finished (a failed task cancels the others and re-raises its error here).
        Paths travel resolved, so every node must see the same absolute paths."""
        data = str(Path(data_dir).resolve()) if data_dir is not None else None
        zoo_root, cache_root = str(Path(zoo.root).resolve()), str(Path(cache.root).resolve())
        refs = [
            self._task.options(name=f"craft-pass-{i}").remote(config, i, data, zoo_root, cache_root)
            for i in range(n_passes)
        ]
        try:
            cached = self.ray.get(refs)
        except Exception:
            for ref in refs:
                self.ray.cancel(ref)
            raise
        logger.info(
            "ray: %d attack passes crafted on the cluster, %d were already cached",
            n_passes - sum(cached),
            sum(cached),
        )

    def shutdown(self) -> None:
        """Disconnect from (or stop the local) Ray."""
        self.ray.shutdown()
