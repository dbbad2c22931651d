"""Corruption evaluation: perturbation sequences (flip probability) and severity corruptions.

Corrupted images depend only on the data and the corruption configuration, never on the model,
so they are generated once, cached on disk (uint8, keyed by the data file's sha256, the split,
the sample indices, the corruption's full configuration, the severity, the frame count and the
seed) and reused for every model and defense. Each model's predictions on them are cached too
(keyed additionally by its checkpoint sha256), so an interrupted run resumes where it stopped.
Every image's corruption is seeded from (seed, corruption id, severity, the image's index in the
full split), so a subset sees exactly the frames the full split would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmark.corruptions import CORRUPTIONS
from benchmark.corruptions.functions import derive_seed
from benchmark.corruptions.presets import CorruptionPlan
from benchmark.datasets.base import ImageSplit
from benchmark.evaluation.cache import AdversarialCache, cache_key, indices_digest
from benchmark.evaluation.estimate import forward_seconds
from benchmark.metrics.base import Predictions, scalar, wilson_interval
from benchmark.metrics.classification import per_class_accuracy
from benchmark.metrics.corruption import corruption_errors, flip_probability, relative
from benchmark.models.base import ImageClassifier
from benchmark.models.inference import probabilities
from benchmark.results.outcomes import outcomes_block

logger = logging.getLogger(__name__)

FRAMES_VERSION = 1


class CorruptionRunner:
    """Generates (or loads) corrupted images and scores one model, plus an optional reference.

    Args:
        model: the evaluated model.
        split: the scored images (already subset), uint8 NCHW.
        indices: the images' indices in the full split (seeds and cache keys use them).
        model_sha256: checkpoint sha256 of ``model`` (prediction cache key).
        reference: optional ``(model_id, model, sha256)`` of the declared reference model.
        seed: base seed of every corruption draw.
        batch_size: inference batch size.
        cache: where frames and predictions are cached.
        progress: show progress bars (default: only on a terminal).
    """

    def __init__(
        self,
        model: ImageClassifier,
        split: ImageSplit,
        indices: torch.Tensor,
        *,
        model_sha256: str,
        reference: tuple[str, ImageClassifier, str] | None,
        seed: int,
        batch_size: int,
        cache: AdversarialCache,
        progress: bool | None = None,
    ) -> None:
        self.model, self.split, self.indices = model, split, indices
        self.model_sha256, self.reference = model_sha256, reference
        self.seed, self.batch_size, self.cache = seed, batch_size, cache
        self.show = sys.stderr.isatty() if progress is None else progress
        self._data_key = {
            "data": split.sha256,
            "split": split.split,
            "indices": indices_digest(indices),
            "seed": seed,
        }

    # -- frames and predictions ---------------------------------------------------------------
    def _images(
        self, key_parts: dict[str, Any], shape: tuple[int, ...], make: Callable[[int, Any], Any]
    ) -> tuple[torch.Tensor, bool]:
        """The uint8 corrupted images of ``key_parts`` (from the cache, or made and cached),
        and whether they came from the cache."""
        key = cache_key(
            kind="corruption-frames", version=FRAMES_VERSION, **self._data_key, **key_parts
        )
        cached = self.cache.load(key, shape)
        if cached is not None:
            return cached, True
        images = self.split.images.numpy()
        out = np.stack([make(int(self.indices[i]), images[i]) for i in range(len(images))]).astype(
            np.uint8
        )
        tensor = torch.from_numpy(out)
        self.cache.save(key, tensor, key_parts)
        return tensor, False

    def _predict(
        self, model: ImageClassifier, sha: str, frames_key: dict[str, Any], images: torch.Tensor
    ) -> np.ndarray:
        """Predicted class (or label decisions) for uint8 images of any leading shape."""
        lead = images.shape[:-3]
        flat = images.reshape(-1, *images.shape[-3:])
        key = cache_key(kind="corruption-probs", model=sha, **self._data_key, **frames_key)
        probs = self.cache.load(key, (flat.shape[0], self._width()))
        if probs is None:
            defense = getattr(model, "defense", None)
            if defense is not None:  # a randomized pipeline draws the same for a cached key
                defense.reseed(int(key[:12], 16) % (2**31))
            batches = (
                flat[i : i + self.batch_size].float().div(255.0)
                for i in range(0, len(flat), self.batch_size)
            )
            probs = torch.from_numpy(probabilities(model, batches)).float()
            self.cache.save(key, probs, {"model": sha, **frames_key})
        pred = Predictions(
            probs=probs.double().numpy(),
            labels=np.zeros(len(flat)),
            class_names=self.split.meta.class_names,
            multi_label=self.split.meta.multi_label,
        ).predicted
        return pred.reshape(*lead, *pred.shape[1:])

    def _width(self) -> int:
        return len(self.split.meta.class_names)

    def _models(self) -> list[tuple[str, ImageClassifier, str]]:
        return [("model", self.model, self.model_sha256)] + (
            [("reference", self.reference[1], self.reference[2])] if self.reference else []
        )

    # -- sequences ----------------------------------------------------------------------------
    def sequence_frames(self, sid: str, severity: int, n_frames: int) -> tuple[torch.Tensor, bool]:
        """uint8 (N, n_frames, C, H, W) frames of every image, and whether they came from the
        cache. Image ``i`` is seeded by its index in the full split, so a subset gets exactly
        the frames the full split would."""
        seq = CORRUPTIONS.get(sid)
        n, (c, h, w) = len(self.split), self.split.images.shape[1:]

        def make(index: int, image: np.ndarray) -> np.ndarray:
            return seq.frames(
                image,
                severity=severity,
                n_frames=n_frames,
                seed=derive_seed(self.seed, sid, severity, index),
            )

        return self._images(_sequence_key(seq, severity, n_frames), (n, n_frames, c, h, w), make)

    def sequences(self, plan: CorruptionPlan) -> dict[str, Any]:
        """Flip probability per sequence type and severity, mFP, FP per family, RFP."""
        jobs = [(sid, s) for sid in plan.sequences for s in plan.sequence_severities]
        labels = self.split.labels.numpy()
        types, by_model = [], {"model": [], "reference": []}
        for sid, severity in tqdm(jobs, disable=not self.show, desc="sequences", unit="type"):
            start = time.perf_counter()
            seq = CORRUPTIONS.get(sid)
            parts = _sequence_key(seq, severity, plan.n_frames)
            frames, cached = self.sequence_frames(sid, severity, plan.n_frames)
            entry: dict[str, Any] = {
                "frames_sha256": images_digest(frames),
                "id": sid,
                "type": seq.name,
                "family": seq.meta.family,
                "severity": severity,
                "compare": seq.compare,
                "config": seq.config(),
            }
            for role, model, sha in self._models():
                preds = self._predict(model, sha, parts, frames)
                fp = flip_probability(preds, seq.compare, seed=self.seed)
                by_model[role].append(fp["value"])
                if role == "model":
                    entry["flip_probability"] = fp
                    correct = _correct(preds, labels)
                    entry["frame_accuracy"] = [float(v) for v in correct.mean(axis=0)]
                else:
                    entry["reference_flip_probability"] = fp["value"]
                    entry["relative_flip_probability"] = relative(
                        entry["flip_probability"]["value"], fp["value"]
                    )
            entry["seconds"] = time.perf_counter() - start
            entry["frames_cached"] = cached
            types.append(entry)
            logger.info(
                "%s severity %d: FP %.4f%s",
                sid,
                severity,
                entry["flip_probability"]["value"],
                " (frames cached)" if cached else "",
            )
        families: dict[str, list[float]] = {}
        for t in types:
            families.setdefault(t["family"], []).append(t["flip_probability"]["value"])
        out: dict[str, Any] = {
            "n_frames": plan.n_frames,
            "severities": list(plan.sequence_severities),
            "types": types,
            "mfp": float(np.mean(by_model["model"])) if types else None,
            "mfp_by_family": {k: float(np.mean(v)) for k, v in sorted(families.items())},
        }
        if self.reference and types:
            out["reference_mfp"] = float(np.mean(by_model["reference"]))
            out["relative_mfp"] = relative(out["mfp"], out["reference_mfp"])
        return out

    # -- severity corruptions -----------------------------------------------------------------
    def severities(self, plan: CorruptionPlan, clean: Predictions) -> dict[str, Any]:
        """Accuracy per corruption and severity, mean corruption accuracy, CE / mCE."""
        n, (c, h, w) = len(self.split), self.split.images.shape[1:]
        labels = self.split.labels.numpy()
        colour = c == 3
        names = [x for x in plan.corruptions if colour or not CORRUPTIONS.get(x).colour_only]
        skipped = [x for x in plan.corruptions if x not in names]
        errors: dict[str, dict[str, dict[str, list[float]]]] = {
            "model": {"error": {}, "balanced_error": {}},
            "reference": {"error": {}, "balanced_error": {}},
        }
        rows = []
        jobs = [(x, s) for x in names for s in plan.severities]
        bar = tqdm(total=len(jobs), disable=not self.show, desc="corruptions", unit="cell")
        for name in names:
            corr = CORRUPTIONS.get(name)
            start = time.perf_counter()
            row: dict[str, Any] = {
                "id": name,
                "family": corr.meta.family,
                "config": corr.config(),
                "accuracy": [],
                "balanced_accuracy": [],
            }
            all_cached = True
            for severity in plan.severities:
                parts = {"corruption": corr.config(), "severity": severity}

                def make(index: int, image: np.ndarray, corr=corr, severity=severity, name=name):
                    return corr.apply(
                        image, severity, seed=derive_seed(self.seed, name, severity, index)
                    )

                images, cached = self._images(parts, (n, c, h, w), make)
                all_cached &= cached
                row.setdefault("images_sha256", []).append(images_digest(images))
                for role, model, sha in self._models():
                    preds = self._predict(model, sha, parts, images)
                    acc, bal = _accuracies(preds, labels, self.split.meta.class_names)
                    errors[role]["error"].setdefault(name, []).append(1.0 - acc)
                    if bal is not None:
                        errors[role]["balanced_error"].setdefault(name, []).append(1.0 - bal)
                    if role == "model":
                        row["accuracy"].append(_accuracy_scalar(preds, labels))
                        row["balanced_accuracy"].append(bal)
                        if preds.ndim == 1:  # which images stayed correct (single-label)
                            row.setdefault("outcomes", []).append(outcomes_block(preds == labels))
                bar.update(1)
            row["mean_accuracy"] = float(np.mean([a["value"] for a in row["accuracy"]]))
            row["seconds"] = time.perf_counter() - start
            row["images_cached"] = all_cached
            rows.append(row)
            logger.info("%s: mean accuracy over severities %.4f", name, row["mean_accuracy"])
        bar.close()
        clean_acc, clean_bal = _accuracies(clean.predicted, labels, self.split.meta.class_names)
        out: dict[str, Any] = {
            "severities": list(plan.severities),
            "corruptions": rows,
            "skipped": [{"id": x, "reason": "defined for colour images only"} for x in skipped],
            "clean_accuracy": clean_acc,
            "clean_balanced_accuracy": clean_bal,
            "mean_corruption_accuracy": float(np.mean([r["mean_accuracy"] for r in rows]))
            if rows
            else None,
        }
        if self.reference and rows:
            ref_model = self.reference[1]
            ref_clean = self._predict(
                ref_model, self.reference[2], {"clean": True}, self.split.images
            )
            ref_acc, ref_bal = _accuracies(ref_clean, labels, self.split.meta.class_names)
            out["error_vs_reference"] = corruption_errors(
                errors["model"]["error"], 1 - clean_acc, errors["reference"]["error"], 1 - ref_acc
            )
            if clean_bal is not None and ref_bal is not None:
                out["balanced_error_vs_reference"] = corruption_errors(
                    errors["model"]["balanced_error"],
                    1 - clean_bal,
                    errors["reference"]["balanced_error"],
                    1 - ref_bal,
                )
        return out

    def pending(self, plan: CorruptionPlan) -> tuple[int, int, int]:
        """What ``plan`` still has to compute: corrupted-image sets to make (of all its sets)
        and images to predict (over every model scored), from the cache's contents."""
        colour = self.split.images.shape[1] == 3
        sets = [
            _sequence_key(CORRUPTIONS.get(sid), s, plan.n_frames)
            for sid in plan.sequences
            for s in plan.sequence_severities
        ] + [
            {"corruption": CORRUPTIONS.get(x).config(), "severity": s}
            for x in plan.corruptions
            if colour or not CORRUPTIONS.get(x).colour_only
            for s in plan.severities
        ]
        make = predict = 0
        n = len(self.split)
        for parts in sets:
            frames = cache_key(
                kind="corruption-frames", version=FRAMES_VERSION, **self._data_key, **parts
            )
            make += not self.cache.has(frames)
            images = n * parts.get("n_frames", 1)
            for _, _, sha in self._models():
                key = cache_key(kind="corruption-probs", model=sha, **self._data_key, **parts)
                predict += 0 if self.cache.has(key) else images
        return make, len(sets), predict

    def log_estimate(self, plan: CorruptionPlan) -> float:
        """Log, before any corruption work, what is left to compute and how long the
        predictions will take here (a forward pass of the scored model timed on one batch of
        the clean images, best of three); returns that time in seconds. Making the corrupted
        images is not timed: it is done once per dataset and reused by every later run."""
        make, total, predict = self.pending(plan)
        seconds = 0.0
        if predict:
            x = self.split.images[: self.batch_size].float().div(255.0)
            x = x.to(next(iter(self.model.parameters()), torch.zeros(0)).device)
            seconds = predict * forward_seconds(self.model, x)
        logger.info(
            "corruptions: %d of %d corrupted-image sets to make (the rest cached), %d images "
            "to predict: about %.0f min of predictions here, plus making the sets (once per "
            "dataset; minutes per set for corruptions run at 224 px)",
            make,
            total,
            predict,
            seconds / 60,
        )
        return seconds

    def run(self, plan: CorruptionPlan, clean: Predictions) -> dict[str, Any]:
        """The results JSON's ``corruptions`` block for ``plan``."""
        self.log_estimate(plan)
        block: dict[str, Any] = {"plan": asdict(plan), "seed": self.seed}
        if self.reference:
            block["reference_model"] = {
                "model_id": self.reference[0],
                "checkpoint_sha256": self.reference[2],
            }
        if plan.sequences:
            block["sequences"] = self.sequences(plan)
        if plan.corruptions:
            block["severity"] = self.severities(plan, clean)
        return block


def images_digest(images: torch.Tensor) -> str:
    """sha256 of uint8 corrupted images (C-contiguous bytes) with their shape: two runs with
    equal digests scored exactly the same corrupted images."""
    h = hashlib.sha256(json.dumps(list(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()


def _sequence_key(seq: Any, severity: int, n_frames: int) -> dict[str, Any]:
    return {"corruption": seq.config(), "severity": severity, "n_frames": n_frames}


def _accuracy_scalar(preds: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy with a Wilson CI over images (over label decisions for multi-label models)."""
    right = preds == labels.astype(preds.dtype)
    k, total = int(right.sum()), int(right.size)
    return scalar(k / total, len(preds), wilson_interval(k, total), "wilson")


def _correct(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, n) correctness per frame; all labels right for multi-label models."""
    if preds.ndim == 3:
        return (preds == labels[:, None, :].astype(preds.dtype)).all(axis=2)
    return preds == labels[:, None]


def _accuracies(
    preds: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...] | list[str]
) -> tuple[float, float | None]:
    """Accuracy (mean label accuracy for multi-label) and balanced accuracy (None for
    multi-label, where MedMNIST-C's balanced error is not defined)."""
    if preds.ndim == 2:
        return float((preds == labels.astype(preds.dtype)).mean()), None
    probs = np.eye(len(class_names))[preds]
    pc = per_class_accuracy(
        Predictions(probs=probs, labels=labels, class_names=list(class_names), multi_label=False)
    )
    return float((preds == labels).mean()), float(pc["balanced_accuracy"])
