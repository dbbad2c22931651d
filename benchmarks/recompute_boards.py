"""Recompute the ranked boards from the published per-image outcomes, independently.

The project promises that "per-image outcomes are published so anyone can recompute a board".
This script is a second implementation of the boards' figures, written from the documentation
(docs/leaderboard.md, docs/protocol.md, the module docstrings of ``benchmark/metrics/paired.py``,
``balanced.py``, ``ranks.py`` and ``benchmark/results/outcomes.py``, the results schema
``benchmark/results/schemas/result-2.schema.json``). It imports nothing from the ``benchmark``
package: only the standard library and numpy.

For every dataset and board it runs ``bench leaderboard show DATASET BOARD --json`` to learn
which rows are ranked and which results file each comes from, then recomputes from those files
alone:

* L-inf boards (``linf-2-255``, ``linf-8-255``): per image, correct clean and under every
  non-sanity L-inf attack block of the run at the board's budget or below (both passes of an
  adaptive run, black-box included); the balanced worst case (mean over the classes present of
  the per-class share of such images), n, and the plain worst case with its Wilson interval.
* Corruption boards: per image, how many of the M = 110 (corruption, severity) versions stay
  correct; the mean corruption balanced accuracy (mean over the classes present of the class
  mean of count / M).
* Between every pair of ranked rows, the two-sided stratified sign-flip test of the per-image
  differences (exact by convolution; Monte Carlo or the Hoeffding bound only if the lattice is
  too large), Holm's step-down correction at alpha = 0.05, and the shared rank ranges
  ``1 + #significantly better`` to ``m - #significantly worse``.
* Its own class-stratified percentile bootstrap (2000 resamples, its own seed): it cannot match
  the project's seeded draws to the digit, so each bound must agree within 1 percentage
  points.
* That every ranked row of a board was scored on the same images: data sha256, indices and
  labels (and, on a corruption board, the digests of the corrupted images).

It prints one line per ranked row (``agree`` or ``DIFFERS`` with both values), a line per board
and a summary line, and exits 1 on any disagreement.

Usage: python benchmarks/recompute_boards.py [--root leaderboard/results] [--bench .venv/bin/bench]
       [--dataset D ...] [--jobs 2]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("breastmnist", "pneumoniamnist", "retinamnist", "ham10000_220")
BOARDS = ("linf-2-255", "linf-8-255", "corruptions")
LINF_BUDGETS = {"linf-2-255": 2 / 255, "linf-8-255": 8 / 255}

ALPHA = 0.05
N_BOOT = 20_000  # ten times the project's: our bounds carry little Monte Carlo noise of their own
BOOT_SEED = 20261208  # our own seed: the project's draws are not reproduced on purpose
CI_TOLERANCE = 0.01  # 1 percentage point, for the bootstrap bounds only
# The width of the board's interval over ours, for intervals at least MIN_WIDTH wide: a 90 %
# interval published as a 95 % one is about 0.83 times as wide, inside the bounds' tolerance.
WIDTH_RATIO = (0.9, 1.1)
MIN_WIDTH = 0.02
VALUE_TOLERANCE = 1e-9  # every deterministic figure must agree to rounding
WILSON_Z = 1.959963984540054  # the 97.5 % standard normal quantile
MAX_EXACT_POINTS = 4_000_000  # joint support of the exact sign-flip law before Monte Carlo
N_FLIPS = 200_000
FLIP_SEED = 0


class Unsupported(ValueError):
    """A row this script cannot recompute (it says so rather than compute something else)."""


# ----------------------------------------------------------------------------- decoding


def decode_bits(block: dict[str, Any], n: int) -> np.ndarray:
    """The (n,) booleans of an outcomes block (``bits-lsb-base64``: bit i % 8 of byte i // 8,
    least significant first)."""
    if block.get("encoding") != "bits-lsb-base64":
        raise ValueError(f"unknown outcomes encoding {block.get('encoding')!r}")
    raw = np.frombuffer(base64.b64decode(block["correct"]), dtype=np.uint8)
    bits = np.unpackbits(raw, bitorder="little")
    if bits.size < n or bits.size - n >= 8:
        raise ValueError(f"outcomes hold {bits.size} bits for {n} images")
    return bits[:n].astype(bool)


def decode_labels(data: dict[str, Any]) -> np.ndarray:
    """The (n,) class ids of ``data.labels`` (``uint8-base64``; single-label only)."""
    labels = data["labels"]
    if labels.get("encoding") != "uint8-base64":
        raise ValueError("multi-label labels: the boards rank single-label tasks only")
    out = np.frombuffer(base64.b64decode(labels["values"]), dtype=np.uint8).astype(np.int64)
    if list(labels["shape"]) != [out.size] or out.size != data["n"]:
        raise ValueError(f"labels hold {out.size} values, shape {labels['shape']}, n {data['n']}")
    return out


def decode_indices(data: dict[str, Any]) -> list[int]:
    """The split indices scored: ``{"start", "stop"}`` is ``range(start, stop)``, else a list."""
    idx = data["indices"]
    if isinstance(idx, dict):
        return list(range(int(idx["start"]), int(idx["stop"])))
    return [int(i) for i in idx]


# ----------------------------------------------------------------------------- per-image figures


@dataclass
class RunScores:
    """One ranked row's per-image figures, recomputed from its results file.

    Attributes:
        path: the results file.
        scores: (n,) per-image score in [0, total] (L-inf: 0/1 worst case; corruption: count).
        total: M, the most a score can be (1 on an L-inf board).
        labels: (n,) class ids.
        images: what "the same images" means for this run (compared across the board).
        blocks: the attack blocks or corruption pairs counted, for the report.
    """

    path: Path
    scores: np.ndarray
    total: int
    labels: np.ndarray
    images: dict[str, Any]
    blocks: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.scores.size)


def _image_identity(doc: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    data = doc["data"]
    return {
        "data sha256": data["sha256"],
        "indices": decode_indices(data),
        "labels": labels.tolist(),
    }


# docs/leaderboard.md, "Recompute a board yourself": the groups a block's threat model counts
# toward (its own otherwise; white-box, the bare model, toward no defended run's group).
GROUPS_OF = {"black_box": ("adaptive",), "transfer": ("oblivious", "adaptive"), "white_box": ()}


def _block_rule(doc: dict[str, Any], path: Path) -> Any:
    """Which attack blocks a run's key takes, by their ``threat_model``: every block of an
    undefended run (no ``worst_case_by_threat_model``) or of a run with an ``any`` worst case;
    else the blocks counting toward its strongest group, ``adaptive`` when it reports one, else
    ``oblivious``."""
    groups = doc.get("worst_case_by_threat_model")
    if not groups or "any" in groups:
        return lambda threat_model: True
    group = "adaptive" if "adaptive" in groups else "oblivious"
    if group not in groups:
        raise Unsupported(f"{path}: worst cases of threat models {sorted(groups)} only")
    return lambda threat_model: group in GROUPS_OF.get(threat_model, (threat_model,))


def linf_scores(doc: dict[str, Any], path: Path, eps: float) -> RunScores:
    """Per-image worst case of a protocol run at L-inf budget ``eps``.

    An image counts when it is correct clean and under every attack block that is bounded,
    L-inf, not a sanity block, at ``eps`` or below and of a threat model the run's key takes
    (:func:`_block_rule`). The "or below" is stated for the adaptive track (docs/protocol.md,
    "The number": "at the budget or below"); the deterministic track's text only says "the
    per-image worst case", and the run's own ``worst_case`` list (8/255: both AutoAttack
    cells) agrees with "or below"; docs/leaderboard.md ("Recompute a board yourself") now
    says it for both, with the threat-model rule, which it first lacked.
    """
    counts = _block_rule(doc, path)
    data = doc["data"]
    n = int(data["n"])
    labels = decode_labels(data)
    clean = decode_bits(doc["metrics"]["clean"]["outcomes"], n)
    worst = clean.copy()
    used = []
    for block in doc.get("attacks") or []:
        if block.get("sanity_only") or not block.get("bounded", True):
            continue
        if block.get("norm") != "linf" or float(block["eps"]) > eps + 1e-12:
            continue
        if not counts(str(block.get("threat_model", ""))):
            continue
        worst &= decode_bits(block["outcomes"], n)
        used.append(str(block["cell_id"]))
    if not used:
        raise ValueError(f"{path}: no attack block at {eps * 255:g}/255 or below")
    return RunScores(path, worst.astype(np.int64), 1, labels, _image_identity(doc, labels), used)


def corruption_scores(doc: dict[str, Any], path: Path) -> RunScores:
    """Per-image count of correct (corruption, severity) versions of a corruption-protocol run."""
    data = doc["data"]
    n = int(data["n"])
    labels = decode_labels(data)
    severity = doc["corruptions"]["severity"]
    counts = np.zeros(n, dtype=np.int64)
    total = 0
    used: list[str] = []
    digests: dict[str, Any] = {}
    for c in severity["corruptions"]:
        outcomes = c.get("outcomes") or []
        if len(outcomes) != len(severity["severities"]):
            raise ValueError(f"{path}: {c['id']} has {len(outcomes)} outcome vectors")
        for sev, block in zip(severity["severities"], outcomes, strict=True):
            counts += decode_bits(block, n)
            total += 1
            used.append(f"{c['id']}@{sev}")
        digests[c["id"]] = list(c.get("images_sha256") or [])
    identity = _image_identity(doc, labels)
    identity["corrupted images sha256"] = digests
    seqs = (doc["corruptions"].get("sequences") or {}).get("types") or []
    identity["sequence frames sha256"] = {s["id"]: s.get("frames_sha256") for s in seqs}
    identity["image size"] = doc["config"].get("image_size")
    return RunScores(path, counts, total, labels, identity, used)


# ----------------------------------------------------------------------------- statistics


def class_index(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each class present, in class order (absent classes are left out)."""
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


def balanced_score(scores: np.ndarray, labels: np.ndarray, total: int) -> float:
    """Mean over the classes present of the class mean of ``scores / total``."""
    return float(np.mean([scores[i].mean() / total for i in class_index(labels)]))


def bootstrap_interval(
    scores: np.ndarray, labels: np.ndarray, total: int, seed: int = BOOT_SEED
) -> tuple[float, float]:
    """Class-stratified percentile bootstrap 95 % interval of the balanced score: each class
    resampled with replacement at its own size, ``N_BOOT`` resamples."""
    rng = np.random.default_rng(seed)
    per_class = []
    for idx in class_index(labels):
        draws = rng.integers(0, idx.size, size=(N_BOOT, idx.size))
        per_class.append(scores[idx][draws].mean(axis=1) / total)
    stats = np.mean(per_class, axis=0)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def wilson_interval(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of the proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def _class_sum_law(magnitudes: np.ndarray) -> np.ndarray:
    """Law of ``sum_i s_i m_i`` with independent fair signs s_i, on -M..M (M = sum m_i)."""
    law = np.ones(1)
    for m, d in zip(*np.unique(magnitudes, return_counts=True), strict=True):
        m, d = int(m), int(d)
        kernel = np.zeros(2 * m * d + 1)
        # d signs of magnitude m: m (2k - d) with probability C(d, k) / 2**d.
        kernel[:: 2 * m] = [math.comb(d, k) / 2.0**d for k in range(d + 1)]
        law = np.convolve(law, kernel)
    return law


@dataclass(frozen=True)
class SignFlip:
    """A paired test of entry a against entry b.

    Attributes:
        statistic: ``T = sum_c sum_{i in c} (a_i - b_i) / n_c``, exactly.
        p_value: two-sided ``P[|T| >= |t_observed|]`` under independent sign flips.
        method: ``exact``, ``monte carlo`` or ``hoeffding``.
        a_higher: images where a scores higher than b.
        b_higher: images where b scores higher than a.
    """

    statistic: Fraction
    p_value: float
    method: str
    a_higher: int
    b_higher: int


def sign_flip_test(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> SignFlip:
    """Two-sided stratified sign-flip test on the per-image differences ``a - b``.

    Each image's difference changes sign with probability 1/2 under the null, weighted by
    1 / n_c of its class (n_c: all the class's images). Exact: each class's signed sum is an
    integer law, the classes are put on the lattice of step 1 / lcm(n_c), all but the widest
    class are convolved into one joint law, and the tail against the widest one is read off its
    cumulative law. With M = 1 (booleans) this is the balanced-accuracy test, McNemar's with
    one class or equal class sizes.
    """
    d = a.astype(np.int64) - b.astype(np.int64)
    groups = class_index(labels)
    sizes = [int(g.size) for g in groups]
    t_obs = sum(
        (Fraction(int(d[g].sum()), s) for g, s in zip(groups, sizes, strict=True)), Fraction(0)
    )
    a_higher, b_higher = int(np.sum(d > 0)), int(np.sum(d < 0))
    if t_obs == 0:
        return SignFlip(t_obs, 1.0, "exact", a_higher, b_higher)
    lcm = math.lcm(*sizes)
    t_int = abs(t_obs * lcm)
    assert t_int.denominator == 1
    t_lattice = int(t_int)

    # Each class's signed sum ranges over -M_c..M_c (M_c = sum |d_i|), step lcm / n_c.
    spans = [(g, s, int(np.abs(d[g]).sum())) for g, s in zip(groups, sizes, strict=True)]
    spans = [(g, s, m) for g, s, m in spans if m > 0]
    reach = sum(m * (lcm // s) for _, s, m in spans)  # Python ints: no overflow
    widths = sorted(2 * m + 1 for _, _, m in spans)
    if reach < 2**62 and math.prod(widths[:-1]) <= MAX_EXACT_POINTS:
        laws = []  # per class: (integer lattice values, probabilities)
        for g, s, m in spans:
            mags = np.abs(d[g])
            law = _class_sum_law(mags[mags > 0])
            values = np.arange(-m, m + 1, dtype=np.int64) * (lcm // s)
            keep = law > 0
            laws.append((values[keep], law[keep]))
        laws.sort(key=lambda vp: vp[0].size)
        joint_v, joint_p = np.zeros(1, dtype=np.int64), np.ones(1)
        for v, p in laws[:-1]:
            sums = (joint_v[:, None] + v[None, :]).ravel()
            probs = (joint_p[:, None] * p[None, :]).ravel()
            joint_v, inverse = np.unique(sums, return_inverse=True)
            joint_p = np.bincount(inverse.ravel(), weights=probs)
        last_v, last_p = laws[-1]
        cum = np.concatenate([[0.0], np.cumsum(last_p)])
        # P[A + B >= t] + P[A + B <= -t] with A the joint law, B the widest class (t > 0).
        upper = cum[-1] - cum[np.searchsorted(last_v, t_lattice - joint_v, side="left")]
        lower = cum[np.searchsorted(last_v, -t_lattice - joint_v, side="right")]
        p = float(np.sum(joint_p * (upper + lower)))
        return SignFlip(t_obs, min(1.0, p), "exact", a_higher, b_higher)

    # Too large a lattice: random sign flips, or the Hoeffding bound when it is below what the
    # flips can resolve (the project's documented fallback).
    weights = np.concatenate(
        [np.abs(d[g]).astype(float) / s for g, s in zip(groups, sizes, strict=True)]
    )
    weights = weights[weights > 0]
    t = float(abs(t_obs))
    bound = 2 * math.exp(-(t**2) / (2 * float(np.sum(weights**2))))
    if bound < 1 / (N_FLIPS + 1):
        return SignFlip(t_obs, bound, "hoeffding", a_higher, b_higher)
    rng = np.random.default_rng(FLIP_SEED)
    hits, done = 0, 0
    while done < N_FLIPS:
        k = min(10_000, N_FLIPS - done)
        signs = rng.integers(0, 2, size=(k, weights.size)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ weights) >= t * (1 - 1e-12)))
        done += k
    return SignFlip(t_obs, (hits + 1) / (done + 1), "monte carlo", a_higher, b_higher)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


@dataclass(frozen=True)
class PairResult:
    """One pair of ranked rows: indices, the test and its Holm-adjusted p-value."""

    i: int
    j: int
    test: SignFlip
    adjusted: float


def rank_ranges(runs: Sequence[RunScores]) -> tuple[list[str], list[PairResult]]:
    """Shared rank ranges of the board's ranked rows and every pair's test.

    Entry A is significantly better than B when its figure is higher and the Holm-adjusted
    p-value is at most ``ALPHA``; the range is ``1 + #better`` to ``m - #worse``.
    """
    m = len(runs)
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    tests = [sign_flip_test(runs[i].scores, runs[j].scores, runs[i].labels) for i, j in pairs]
    adjusted = holm([t.p_value for t in tests])
    better = [0] * m  # entries significantly better than row i
    worse = [0] * m
    results = []
    for (i, j), t, adj in zip(pairs, tests, adjusted, strict=True):
        results.append(PairResult(i, j, t, adj))
        if adj <= ALPHA and t.statistic != 0:
            hi, lo = (i, j) if t.statistic > 0 else (j, i)
            better[lo] += 1
            worse[hi] += 1
    ranks = []
    for i in range(m):
        low, high = 1 + better[i], m - worse[i]
        ranks.append(str(low) if low == high else f"{low}-{high}")
    return ranks, results


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class FieldCheck:
    """One figure of one row: the board's value, ours, and whether they agree."""

    name: str
    board: Any
    ours: Any
    ok: bool
    note: str = ""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def compare_field(
    name: str, board: Any, ours: Any, tolerance: float = VALUE_TOLERANCE
) -> FieldCheck:
    """Compare one figure: numbers (and pairs of numbers) within ``tolerance``, else equality."""
    if isinstance(ours, (list, tuple)):
        ok = (
            isinstance(board, (list, tuple))
            and len(board) == len(ours)
            and all(
                isinstance(b, (int, float)) and abs(float(b) - float(o)) <= tolerance
                for b, o in zip(board, ours, strict=True)
            )
        )
    elif isinstance(ours, float):
        ok = isinstance(board, (int, float)) and abs(float(board) - ours) <= tolerance
    else:
        ok = board == ours
    note = f"within {tolerance * 100:g} pp" if tolerance >= 1e-3 else ""
    return FieldCheck(name, board, ours, bool(ok), note)


def compare_row(row: dict[str, Any], recomputed: dict[str, Any]) -> list[FieldCheck]:
    """Compare a board row (``bench leaderboard show --json``) with our figures.

    ``recomputed`` holds ``value``, ``n``, ``rank`` and ``ci95`` (our bootstrap: within
    ``CI_TOLERANCE``), and on an L-inf board ``accuracy`` and ``accuracy_ci95`` (Wilson).
    """
    checks = [
        compare_field("key", row.get("value"), recomputed["value"]),
        compare_field("n", row.get("n"), recomputed["n"]),
        compare_field("rank", row.get("rank"), recomputed["rank"]),
        compare_field("95 % CI", row.get("ci95"), recomputed["ci95"], CI_TOLERANCE),
    ]
    theirs, ours = row.get("ci95"), recomputed["ci95"]
    width = ours[1] - ours[0]
    if width >= MIN_WIDTH and isinstance(theirs, (list, tuple)) and len(theirs) == 2:
        ratio = (float(theirs[1]) - float(theirs[0])) / width
        checks.append(
            FieldCheck(
                "CI width, board's over ours",
                round(ratio, 3),
                round(ratio, 3),
                WIDTH_RATIO[0] <= ratio <= WIDTH_RATIO[1],
                f"allowed {WIDTH_RATIO[0]:g}-{WIDTH_RATIO[1]:g}",
            )
        )
    if "accuracy" in recomputed:
        checks.append(
            compare_field("plain worst case", row.get("accuracy"), recomputed["accuracy"])
        )
        checks.append(
            compare_field("its Wilson CI", row.get("accuracy_ci95"), recomputed["accuracy_ci95"])
        )
    return checks


def _flips(method: str) -> int | None:
    """The number of random sign flips a Monte Carlo p-value of the board drew (None: not
    Monte Carlo), from its method as ``bench leaderboard show --json`` gives it."""
    found = re.search(r"Monte Carlo, (\d+) flips", method)
    return int(found.group(1)) if found else None


def p_tolerance(p: float, board_method: str, our_method: str) -> float | None:
    """How far the board's p-value may be from ours: to rounding when both are exact; four
    standard errors of the Monte Carlo estimate with the fewer flips (plus 0.001) when either
    drew random flips; None when either is a Hoeffding bound (a bound, not an estimate: only
    the side of alpha is compared)."""
    if "Hoeffding" in board_method or our_method == "hoeffding":
        return None
    ours = N_FLIPS if our_method == "monte carlo" else None
    drawn = [n for n in (_flips(board_method), ours) if n]
    if not drawn:
        return 1e-9 + 1e-6 * p
    return 4 * math.sqrt(max(p * (1 - p), 1e-4) / min(drawn)) + 1e-3


def compare_p_values(
    board: dict[str, Any], ours: dict[str, tuple[float, float, str]]
) -> FieldCheck:
    """Compare a row's paired tests with the board's (``p_values_raw``, ``p_values`` after
    Holm and ``p_methods`` of ``bench leaderboard show --json``). ``ours``: other entry ->
    (raw p, Holm-adjusted p, method). Each p-value within :func:`p_tolerance` of ours, and
    after Holm on the same side of alpha whenever either side drew random flips or is a
    bound."""
    raw, adj = board.get("p_values_raw") or {}, board.get("p_values") or {}
    methods = board.get("p_methods") or {}
    bad = []
    if set(raw) != set(ours) or set(adj) != set(ours):
        bad.append(f"pairs {sorted(raw)} vs {sorted(ours)}")
    for other, (p_raw, p_adj, method) in sorted(ours.items()):
        if other not in raw or other not in adj:
            continue
        tol = p_tolerance(p_raw, str(methods.get(other, "")), method)
        same_side = (float(adj[other]) <= ALPHA) == (p_adj <= ALPHA)
        if tol is None:
            ok = same_side
        else:
            ok = all(
                abs(float(b) - o) <= tol for b, o in ((raw[other], p_raw), (adj[other], p_adj))
            )
            ok = ok and (same_side or tol < 1e-6)
        if not ok:
            bad.append(f"{other}: board {raw[other]:.6g} / Holm {adj[other]:.6g}")
    kinds = sorted({m for _, _, m in ours.values()})
    return FieldCheck(
        f"p-values of {len(ours)} pairs",
        "; ".join(bad) if bad else "as ours",
        "; ".join(f"{o}: {r:.6g} / Holm {a:.6g}" for o, (r, a, _) in sorted(ours.items()))
        if bad
        else f"raw and Holm (ours {', '.join(kinds)})",
        not bad,
    )


def format_row(label: str, checks: Sequence[FieldCheck]) -> str:
    """One line per row: ``agree`` with our figures, or ``DIFFERS`` with both values."""
    if all(c.ok for c in checks):
        parts = []
        for c in checks:
            value = _fmt(c.ours) + (f" ({c.note}; board {_fmt(c.board)})" if c.note else "")
            parts.append(f"{c.name} {value}")
        return f"  agree    {label}: " + "; ".join(parts)
    bad = [c for c in checks if not c.ok]
    parts = [f"{c.name}: board {_fmt(c.board)} vs recomputed {_fmt(c.ours)}" for c in bad]
    return f"  DIFFERS  {label}: " + "; ".join(parts)


def same_images(runs: Sequence[RunScores]) -> list[str]:
    """What differs between the ranked rows' images (empty when they were all the same)."""
    problems = []
    if not runs:
        return problems
    ref = runs[0]
    for run in runs[1:]:
        for key, value in ref.images.items():
            if run.images.get(key) != value:
                problems.append(f"{run.path.name} differs from {ref.path.name} in {key}")
    return problems


# ----------------------------------------------------------------------------- boards


@dataclass
class BoardReport:
    """What one board's check found."""

    dataset: str
    board: str
    lines: list[str]
    rows: int = 0
    agree: int = 0
    differ: int = 0
    skipped: bool = False


def show_board(bench: str, root: Path, dataset: str, board: str) -> dict[str, Any]:
    """The project's own board: ``bench leaderboard show DATASET BOARD --json``."""
    cmd = [bench, "leaderboard", "show", dataset, board, "--json", "--root", str(root)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def row_figures(run: RunScores, rank: str, linf: bool) -> dict[str, Any]:
    """Our figures of one ranked row, in the keys of ``bench leaderboard show --json``: the key
    ``value``, ``n``, ``rank``, ``ci95`` (our bootstrap) and, on an L-inf board, the plain worst
    case ``accuracy`` with its Wilson ``accuracy_ci95``."""
    ours: dict[str, Any] = {
        "value": balanced_score(run.scores, run.labels, run.total),
        "n": run.n,
        "rank": rank,
        "ci95": list(bootstrap_interval(run.scores, run.labels, run.total)),
    }
    if linf:
        k = int(run.scores.sum())
        ours["accuracy"] = k / run.n
        ours["accuracy_ci95"] = list(wilson_interval(k, run.n))
    return ours


def load_scores(root: Path, source: str, board: str) -> RunScores:
    """The per-image figures of the results file ``root / source`` for ``board``."""
    path = root / source
    doc = json.loads(path.read_text())
    if board in LINF_BUDGETS:
        return linf_scores(doc, path, LINF_BUDGETS[board])
    return corruption_scores(doc, path)


def check_board(shown: dict[str, Any], root: Path) -> BoardReport:
    """Recompute the ranked rows of one board and compare them with the project's."""
    dataset, board = shown["dataset"], shown["board"]
    report = BoardReport(dataset, board, [])
    ranked = [r for r in shown["rows"] if r.get("status") == "ranked"]
    head = f"{dataset} {board}"
    if not ranked:
        report.skipped = True
        report.lines.append(f"{head}: no ranked row ({len(shown['rows'])} rows), skipped")
        return report
    try:
        runs = [load_scores(root, row["source"], board) for row in ranked]
    except Unsupported as exc:
        report.rows, report.differ = len(ranked), len(ranked)
        report.lines.append(f"  UNCHECKED {head}: {exc}; its {len(ranked)} ranked rows")
        return report
    report.lines.append(
        f"{head}: {len(ranked)} ranked rows ({shown.get('protocol')}); per image: "
        + (
            f"worst case over {', '.join(runs[0].blocks)} and clean"
            if board in LINF_BUDGETS
            else f"correct of M = {runs[0].total} (corruption, severity) versions"
        )
    )
    problems = same_images(runs)
    if problems:
        report.differ += 1
        for p in problems:
            report.lines.append(f"  DIFFERS  same images: {p}")
    else:
        report.lines.append(
            "  agree    same images: data sha256, indices and labels"
            + (", corrupted-image digests and image size" if board not in LINF_BUDGETS else "")
            + f" equal over the {len(runs)} ranked rows"
        )
    ranks, pairs = rank_ranges(runs)
    linf = board in LINF_BUDGETS
    figures = [row_figures(r, k, linf) for r, k in zip(runs, ranks, strict=True)]
    tests: list[dict[str, tuple[float, float, str]]] = [{} for _ in ranked]
    for pr in pairs:
        pair = (pr.test.p_value, pr.adjusted, pr.test.method)
        tests[pr.i][ranked[pr.j]["entry"]] = pair
        tests[pr.j][ranked[pr.i]["entry"]] = pair
    for row, ours, mine in zip(ranked, figures, tests, strict=True):
        checks = compare_row(row, ours)
        if len(ranked) > 1:
            checks.append(compare_p_values(row, mine))
        report.rows += 1
        if all(c.ok for c in checks):
            report.agree += 1
        else:
            report.differ += 1
        report.lines.append(format_row(f"{head} {row['entry']}", checks))
    for pr in pairs:
        t = pr.test
        diff = (figures[pr.i]["value"] - figures[pr.j]["value"]) * 100
        report.lines.append(
            f"    test  #{pr.i + 1} vs #{pr.j + 1}: {diff:+.2f} pp, higher on {t.a_higher} "
            f"/ {t.b_higher} images, p = {t.p_value:.4g} ({t.method}), "
            f"Holm {pr.adjusted:.4g}" + (" significant" if pr.adjusted <= ALPHA else "")
        )
    report.lines.append(
        f"  board {head}: {report.rows} ranked rows checked, {report.agree} agree, "
        f"{report.rows - report.agree} differ"
    )
    return report


def summary_line(reports: Sequence[BoardReport]) -> str:
    """The last line: boards and rows checked, agreements and disagreements."""
    checked = [r for r in reports if not r.skipped]
    rows = sum(r.rows for r in checked)
    agree = sum(r.agree for r in checked)
    differ = sum(r.differ for r in checked)
    skipped = len(reports) - len(checked)
    return (
        f"summary: {len(checked)} boards with ranked rows checked, {rows} ranked rows, "
        f"{agree} agree, {differ} differ; {skipped} boards without a ranked row skipped"
    )


def default_bench() -> str:
    """The project's ``bench``: the repository's venv, else the one on PATH."""
    local = ROOT / ".venv" / "bin" / "bench"
    return str(local) if local.exists() else "bench"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT / "leaderboard" / "results")
    parser.add_argument("--bench", default=default_bench())
    parser.add_argument(
        "--dataset", action="append", choices=DATASETS, help="only these datasets (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="bench processes at a time")
    args = parser.parse_args(argv)
    datasets = args.dataset or list(DATASETS)
    todo = [(d, b) for d in datasets for b in BOARDS]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        shown = list(pool.map(lambda db: show_board(args.bench, args.root, *db), todo))
    reports = []
    for board in shown:
        report = check_board(board, args.root)
        reports.append(report)
        print("\n".join(report.lines), flush=True)
    print(
        f"note: the 95 % intervals are our own stratified bootstrap ({N_BOOT} resamples, seed "
        f"{BOOT_SEED}), checked within {CI_TOLERANCE * 100:g} percentage point of the board's "
        f"bounds and a width ratio of {WIDTH_RATIO[0]:g}-{WIDTH_RATIO[1]:g}; "
        "every other figure must agree to rounding."
    )
    print(summary_line(reports))
    return 1 if any(r.differ for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
