"""Perturbation sequences and severity corruptions: every registered type on a real image."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.corruptions import CORRUPTIONS, SEQUENCE_IDS, SequenceType, SeverityCorruption
from benchmark.corruptions.functions import derive_seed, seeded
from benchmark.corruptions.presets import CORRUPTION_PRESETS, resolve_corruptions
from benchmark.datasets.base import load_split
from benchmark.errors import UnknownNameError

SEVERITY_IDS = [n for n, v in CORRUPTIONS.items() if isinstance(v, SeverityCorruption)]


@pytest.fixture(scope="module")
def images(shared_data):
    """A real grey X-ray (PneumoniaMNIST) and a real colour fundus image (RetinaMNIST)."""
    grey = load_split("pneumoniamnist", "test", size=28, data_dir=shared_data).images[0].numpy()
    colour = load_split("retinamnist", "test", size=28, data_dir=shared_data).images[3].numpy()
    return {"grey": grey, "colour": colour}


def _distance(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of every frame from frame 0, on the 0-255 scale."""
    return np.abs(frames.astype(np.float64) - frames[:1]).mean(axis=(1, 2, 3))


def test_the_fourteen_types_of_the_paper_in_four_families():
    types = {CORRUPTIONS.get(s).name: CORRUPTIONS.get(s).meta.family for s in SEQUENCE_IDS}
    paper = (
        "brightness", "gaussian_blur", "gaussian_noise", "motion_blur", "rotate", "scale",
        "shear", "shot_noise", "snow", "spatter", "speckle_noise", "tilt", "translate",
        "zoom_blur",
    )  # fmt: skip
    assert sorted(types) == sorted(paper)
    assert set(types.values()) == {"noise", "blur", "weather", "digital"}
    compare = {CORRUPTIONS.get(s).name: CORRUPTIONS.get(s).compare for s in SEQUENCE_IDS}
    assert {k for k, v in compare.items() if v == "clean"} == {
        "gaussian_noise",
        "shot_noise",
        "speckle_noise",
    }


@pytest.mark.parametrize("sid", SEQUENCE_IDS)
@pytest.mark.parametrize("kind", ["grey", "colour"])
def test_sequence_contract(sid, kind, images):
    image = images[kind]
    seq: SequenceType = CORRUPTIONS.get(sid)
    frames = seq.frames(image, severity=3, n_frames=9, seed=7)
    assert frames.shape == (9, *image.shape) and frames.dtype == np.uint8  # so inside [0, 1]
    assert np.array_equal(frames[0], image)  # frame 0 is the clean image, bit for bit
    assert np.array_equal(frames, seq.frames(image, severity=3, n_frames=9, seed=7))
    dist = _distance(frames)
    assert dist[-1] > 0.5, f"{sid}: the last frame is not perturbed ({dist[-1]:.2f})"
    if seq.source == "imagecorruptions" and not seq.fresh_draw:
        # A path x + t (C(x) - x) with one draw: the distance grows with t (up to rounding).
        assert np.all(np.diff(dist) >= -0.5), f"{sid}: not monotone: {np.round(dist, 2)}"
        assert dist[-1] > dist[4] > dist[1]
    else:  # fresh noise draws and geometric warps: strength rises along the sequence
        assert dist[-1] > dist[4] > dist[1] > 0, f"{sid}: {np.round(dist, 2)}"
    stronger = seq.frames(image, severity=5, n_frames=9, seed=7)
    assert _distance(stronger)[-1] >= dist[-1] - 0.5, f"{sid}: severity 5 weaker than 3"


@pytest.mark.parametrize("sid", ["gaussian_noise_seq", "snow_seq", "tilt_seq", "translate_seq"])
def test_sequences_depend_on_the_seed(sid, images):
    seq = CORRUPTIONS.get(sid)
    a = seq.frames(images["grey"], severity=3, n_frames=5, seed=1)
    b = seq.frames(images["grey"], severity=3, n_frames=5, seed=2)
    assert not np.array_equal(a, b)


def test_library_randomness_does_not_leak_into_numpy_global_state(images):
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    CORRUPTIONS.get("snow_seq").frames(images["grey"], severity=3, n_frames=3, seed=5)
    assert np.random.rand() == expected
    with seeded(9):
        first = np.random.rand()
    with seeded(9):
        assert np.random.rand() == first
    assert derive_seed(1, "a", 2) == derive_seed(1, "a", 2) != derive_seed(1, "b", 2)


@pytest.mark.parametrize("name", [n for n in SEVERITY_IDS if n != "glass_blur"])
def test_severity_contract(name, images):
    corr: SeverityCorruption = CORRUPTIONS.get(name)
    image = images["colour" if corr.colour_only else "grey"]
    outs = [corr.apply(image, s, seed=3) for s in (1, 3, 5)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(outs[0], corr.apply(image, 1, seed=3))
    dist = [np.abs(o.astype(float) - image).mean() for o in outs]
    assert dist[2] > 0.5, f"{name}: severity 5 leaves the image unchanged"
    with pytest.raises(ValueError, match="severity must be 1-5"):
        corr.apply(image, 6, seed=0)


def test_intensity_corruptions_match_their_formulas():
    image = np.array([[[0, 40, 90], [140, 200, 250]]], dtype=np.uint8)  # 1x2x3
    x = image.astype(np.float64) / 255

    def close(out, expected):  # float32 vs float64 rounding: at most one grey level apart
        assert np.abs(out.astype(int) - np.rint(expected * 255).astype(int)).max() <= 1

    close(CORRUPTIONS.get("brightness_up").apply(image, 5, seed=0), np.clip(x * 1.5, 0, 1))
    close(CORRUPTIONS.get("brightness_down").apply(image, 5, seed=0), x * 0.5)
    close(CORRUPTIONS.get("gamma_corr_up").apply(image, 5, seed=0), x**1.6)
    close(
        CORRUPTIONS.get("contrast_down").apply(image, 5, seed=0),
        np.clip(x.mean() + 0.4 * (x - x.mean()), 0, 1),
    )


def test_presets_and_lists_resolve():
    name, plan = resolve_corruptions("robust_benchmark")
    assert name == "robust_benchmark" and len(plan.sequences) == 14 and plan.n_frames == 21
    assert plan.sequence_severities == (3,) and not plan.corruptions
    assert "glass_blur" not in CORRUPTION_PRESETS.get("imagenet_c").corruptions
    name, plan = resolve_corruptions("rotate_seq, pixelate")
    assert name == "custom" and plan.sequences == ("rotate_seq",)
    assert plan.corruptions == ("pixelate",)
    with pytest.raises(UnknownNameError, match="did you mean 'rotate_seq'"):
        resolve_corruptions("rotate_sq")
