"""The trainer's sandboxed worker: the defenses' worker
(:mod:`benchmark.defenses.sandbox_worker`) with one more request, ``train`` (``config``,
``data_dir``, ``zoo``, ``resume``): ``bench train`` of a training defense into the writable
staging zoo bound for it (:func:`benchmark.training.sandboxed.train_in_sandbox`)."""

from __future__ import annotations

from typing import Any

from benchmark.defenses.sandbox_worker import Worker, serve
from benchmark.models.zoo import ModelZoo
from benchmark.training.config import TrainConfig
from benchmark.training.trainer import train_model

ENTRY = "benchmark.training.sandbox_entry:main"
"""The ``entry`` a sandboxed training session runs."""


class TrainingWorker(Worker):
    """The worker, able to train."""

    def handle(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        if header.get("op") != "train":
            return super().handle(header, payload)
        fields = dict(header["config"])
        fields["milestones"] = tuple(fields["milestones"])
        config = TrainConfig(**fields)
        entry = train_model(
            config,
            data_dir=header.get("data_dir"),
            zoo=ModelZoo(header["zoo"]),
            progress=False,
            resume=bool(header.get("resume", True)),
        )
        return {"ok": True, "model_id": entry.model_id}, b""


def main(memory_mib: int, processes: int) -> None:
    """Serve requests, ``train`` included, until the pipe closes."""
    serve(memory_mib, processes, TrainingWorker())
