"""Visual diagnostics (``bench diagnose``): the maps against hand computations, the embedding's
determinism, label co-occurrence on a hand-made prediction set, the colour map, the figure
index's checks, and a real run (tiny CNN on BreastMNIST) diagnosed from a warm and a cold
cache, then shown on its entry page."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

import benchmark as mrb
from benchmark.attacks.base import Attack
from benchmark.diagnostics import cooccurrence, cooccurrence_shift, diagnose, grad_cam
from benchmark.diagnostics.embedding import layer_features, tsne
from benchmark.diagnostics.images import HEAT, luminance, png_bytes, sprite
from benchmark.diagnostics.saliency import feature_maps, input_gradient
from benchmark.leaderboard import build_site
from benchmark.leaderboard.ledger import published_files
from benchmark.models.cards import publish_cards
from benchmark.models.zoo import ModelZoo
from benchmark.results.diagnostics import diagnostics_folder, read_diagnostics, results_files


class Toy(nn.Module):
    """x -> 1x1 conv (2 channels, known weights) -> ReLU -> global mean -> linear (known)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.act = nn.ReLU()
        self.fc = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0], [0.5, -2.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


class Spatial(nn.Module):
    """x -> 1x1 conv (2 channels) -> ReLU -> 2x2 average pool (the Grad-CAM layer, half the
    input's size) -> flatten -> linear: the head weighs every position differently, so the
    gradient at the layer varies over positions and the map must be enlarged."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1, bias=False)
        self.pool = nn.Sequential(nn.ReLU(), nn.AvgPool2d(2))
        self.fc = nn.Linear(2 * 2 * 2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.fc.weight.copy_(torch.arange(16, dtype=torch.float32).view(2, 8).sub(6) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


def test_grad_cam_matches_a_hand_computation():
    torch.manual_seed(0)
    x = torch.rand(3, 1, 4, 4) - 0.5  # both channels active somewhere
    model = Spatial()
    target = torch.tensor([0, 1, 1])
    cam = grad_cam(model, model.pool, x, target)
    # By hand (Selvaraju et al. eq. 1-2): A = avgpool(ReLU(conv x)), 2 x 2 x 2; d logit_c / d A
    # is fc.weight[c] laid out as A, so the channel weights are its mean over the 4 positions;
    # CAM = ReLU(sum_k w_k A_k), enlarged bilinearly to 4 x 4, divided by its maximum.
    a = torch.nn.functional.avg_pool2d(torch.cat([x.clamp(min=0), (-x).clamp(min=0)], 1), 2)
    w = model.fc.weight.detach().view(2, 2, 2, 2)
    for i, c in enumerate(target.tolist()):
        alpha = w[c].mean(dim=(1, 2))
        hand = (alpha[0] * a[i, 0] + alpha[1] * a[i, 1]).clamp(min=0)
        hand = torch.nn.functional.interpolate(
            hand[None, None], size=(4, 4), mode="bilinear", align_corners=False
        )[0, 0]
        if hand.max() > 0:
            hand = hand / hand.max()
        assert torch.allclose(cam[i], hand, atol=1e-6)
    # Weighting each position by its own gradient (grad x activation, not Grad-CAM's channel
    # means) gives another map here: the test tells the two apart.
    per_position = (w[target[0]] * a[0]).sum(0).clamp(min=0)
    per_position = torch.nn.functional.interpolate(
        per_position[None, None], size=(4, 4), mode="bilinear", align_corners=False
    )[0, 0]
    assert not torch.allclose(cam[0], per_position / per_position.max(), atol=1e-3)


def test_input_gradient_is_the_absolute_gradient_scaled_per_image():
    model = Toy()
    x = torch.tensor([0.3, -0.2] * 8).view(1, 1, 4, 4)  # half the pixels positive, half not
    g = input_gradient(model, x, torch.tensor([1]))
    # d logit_1 / d x = (W[1,0] 1[x>0] - W[1,1] 1[x<0]) / 16 = -1/16 or -3/16: absolute values
    # 1/16 and 3/16, divided by their 99th percentile (3/16): 1/3 and 1.
    expect = torch.where(x[:, 0] > 0, torch.tensor(1 / 3), torch.tensor(1.0))
    assert torch.allclose(g, expect, atol=1e-6)
    # Another class gives another map (class 0: W[0] = [2, 1]: 2/16 and 1/16 -> 1 and 1/2).
    g0 = input_gradient(model, x, torch.tensor([0]))
    assert torch.allclose(g0, torch.where(x[:, 0] > 0, torch.tensor(1.0), torch.tensor(0.5)))


def test_feature_maps_share_one_scale_for_clean_and_adversarial():
    model = Toy()
    clean = torch.full((1, 1, 3, 3), 0.5)
    adv = torch.full((1, 1, 3, 3), 0.25)
    fc, fa, channels = feature_maps(model, model.act, clean, adv, channels=1)
    assert channels == [0]  # the channel active on the clean image (the other is ReLU'd off)
    assert torch.allclose(fc, torch.ones_like(fc)) and torch.allclose(fa, torch.full_like(fa, 0.5))


def test_embedding_is_deterministic_under_its_seed():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1, (30, 20)), rng.normal(4, 1, (30, 20))])
    a, b = tsne(feats, seed=3), tsne(feats, seed=3)
    assert np.array_equal(a, b) and a.shape == (60, 2)
    assert a.min() == 0.0 and a.max() == 1.0
    # Two well-separated clusters stay apart: every point is nearer its own cluster's centre.
    centre = [a[:30].mean(0), a[30:].mean(0)]
    own = [
        np.linalg.norm(p - centre[i // 30]) < np.linalg.norm(p - centre[1 - i // 30])
        for i, p in enumerate(a)
    ]
    assert all(own)
    model = Toy()
    f = layer_features(model, model.act, torch.rand(7, 1, 4, 4), batch=3)
    assert f.shape == (7, 2)


def test_cooccurrence_of_a_hand_made_prediction_set():
    clean = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 1]])
    adv = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
    c = cooccurrence(clean)
    assert c.tolist() == [[3, 1, 2], [1, 1, 0], [2, 0, 3]]
    assert cooccurrence_shift(clean, adv).tolist() == [[-1, 1, -1], [1, 2, 2], [-1, 2, 0]]
    with pytest.raises(ValueError, match="0/1 matrix"):
        cooccurrence(np.array([0.2, 0.9]))


def test_colour_map_reads_in_grey_and_images_are_deterministic():
    lum = luminance(HEAT.astype(float))
    assert np.all(np.diff(lum) > 0)  # monotonic: a grey print keeps the order
    tile = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    data, geom = sprite([[tile, None], [tile, tile]], factor=3)
    assert geom == {"rows": 2, "cols": 2, "tile_w": 6, "tile_h": 6, "gap": 2}
    assert data == sprite([[tile, None], [tile, tile]], factor=3)[0]
    assert png_bytes(tile) == png_bytes(tile.copy())


@pytest.fixture
def tiny_run(tiny_models, shared_data, tmp_path):
    """A tiny CNN's run on BreastMNIST (FGSM and PGD at 8/255, 16 images), cache warm."""
    zoo = tiny_models["zoo"].root
    results, cache = tmp_path / "results", tmp_path / "cache"
    doc = mrb.evaluate(
        "breastmnist",
        "tiny_cnn",
        attacks="fgsm,pgd",
        eps=["8/255"],
        n_examples=16,
        data_dir=shared_data,
        zoo=zoo,
        out_dir=results,
        cache_dir=cache,
        sanity_attack=False,
    )
    (path,) = list(results.rglob(f"{doc['run_id']}.json"))
    return {"path": path, "zoo": zoo, "cache": cache, "results": results, "data": shared_data}


def _count_attacked(monkeypatch) -> list[int]:
    attacked: list[int] = []
    original = Attack.__call__

    def counting(self, x, y, **kw):
        attacked.append(len(x))
        return original(self, x, y, **kw)

    monkeypatch.setattr(Attack, "__call__", counting)
    return attacked


def test_diagnose_from_a_warm_cache_does_no_attack_work(tiny_run, monkeypatch):
    attacked = _count_attacked(monkeypatch)
    report = diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tiny_run["cache"],
        embed_points=12,
    )
    assert attacked == [] and report.recrafted == 0
    assert report.figures == ["gallery", "saliency", "features", "embedding"]
    index, problems = read_diagnostics(tiny_run["path"])
    assert problems == [] and index["recrafted"] == 0
    gallery = index["figures"][0]
    assert len(index["images"]) == 4  # 2 per class, 2 classes
    assert gallery["col_labels"][:3] == ["clean", "fgsm adversarial", "pgd adversarial"]
    assert all(c["alt"] for row in gallery["cells"] for c in row if c)
    assert "from its cache" in gallery["caption"]
    # Drawing again gives the same bytes.
    before = {p.name: p.read_bytes() for p in report.folder.iterdir()}
    diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tiny_run["cache"],
        embed_points=12,
    )
    assert {p.name: p.read_bytes() for p in report.folder.iterdir()} == before


def test_a_cold_cache_recrafts_only_the_images_shown(tiny_run, monkeypatch, tmp_path):
    attacked = _count_attacked(monkeypatch)
    report = diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tmp_path / "empty",
        embed_points=12,
    )
    index, _ = read_diagnostics(tiny_run["path"])
    shown = len(index["images"]) * 2 + 12  # the gallery's images per family, the t-SNE's
    assert sum(attacked) == report.recrafted == report.attacked == shown
    assert "recrafted" in index["figures"][0]["caption"]
    # The recrafted images are kept (under keys of their own): drawing again crafts nothing.
    diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tmp_path / "empty",
        embed_points=12,
    )
    assert sum(attacked) == shown


def test_the_index_guards_its_figures_and_walkers_skip_it(tiny_run):
    diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tiny_run["cache"],
        embed_points=12,
    )
    root, path = tiny_run["results"], tiny_run["path"]
    assert results_files(root) == [path]
    assert published_files(root) == [path.relative_to(root).as_posix()]
    folder = diagnostics_folder(path)
    png = folder / "saliency.png"
    png.write_bytes(png.read_bytes() + b"x")
    index, problems = read_diagnostics(path)
    assert [f["id"] for f in index["figures"]] == ["gallery", "features", "embedding"]
    assert problems == ["figure saliency: saliency.png missing or altered"]
    doc = json.loads(path.read_text())
    path.write_text(json.dumps(doc, indent=2) + " ")  # the same run, other bytes
    index, problems = read_diagnostics(path)
    assert index is None and "another version" in problems[0]


def test_entry_page_shows_each_figure_with_alt_text_and_caption(tiny_run, tmp_path):
    diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tiny_run["cache"],
        embed_points=12,
    )
    site = tmp_path / "site"
    build_site(tiny_run["results"], site)
    (page,) = list(site.glob("entry-*.html"))
    html = page.read_text()
    for fid in ("gallery", "saliency", "features", "embedding"):
        assert f'-{fid}"' in html
    assert html.count("<figcaption>") == 4
    assert 'alt=""' not in html
    assert list((site / "diag").rglob("gallery.png"))
    again = tmp_path / "again"
    build_site(tiny_run["results"], again)
    assert page.read_bytes() == (again / page.name).read_bytes()
    shutil.rmtree(again)


def test_an_entry_page_without_figures_says_why(tiny_run, tmp_path):
    """No committed card: the weights cannot be loaded by a reader; with one: not drawn yet."""
    build_site(tiny_run["results"], tmp_path / "bare")  # without cards: no claim either way
    (page,) = list((tmp_path / "bare").glob("entry-*.html"))
    html = page.read_text()
    assert 'id="diagnostics"' in html and "bench diagnose --published" in html
    assert "has no committed model card" not in html and "weights not distributed" not in html
    build_site(tiny_run["results"], tmp_path / "nocards", cards=tmp_path / "missing")
    html = (tmp_path / "nocards" / page.name).read_text()  # a folder that gave no card either
    assert "has no committed model card" not in html and "weights not distributed" not in html
    cards = tmp_path / "cards"
    publish_cards(ModelZoo(tiny_run["zoo"]), cards, "tiny_cnn_breastmnist_28px_s0")
    build_site(tiny_run["results"], tmp_path / "carded", cards=cards)
    html = (tmp_path / "carded" / page.name).read_text()
    assert "has no committed model card" not in html
    assert "bench diagnose --published" in html
    assert "weights not distributed" not in html
    other = tmp_path / "other_cards"  # committed cards of another model only
    publish_cards(ModelZoo(tiny_run["zoo"]), other, "tiny_cnn_retinamnist_28px_s0")
    build_site(tiny_run["results"], tmp_path / "uncarded", cards=other)
    badged = [
        p.name
        for p in (tmp_path / "uncarded").glob("*.html")
        if 'class="badge warn">weights not distributed<' in p.read_text()
    ]
    assert page.name in badged and any(n.startswith("board-breastmnist--linf") for n in badged)
    assert "has no committed model card" in (tmp_path / "uncarded" / page.name).read_text()
    diagnose(
        tiny_run["path"],
        data_dir=tiny_run["data"],
        zoo=tiny_run["zoo"],
        cache_dir=tiny_run["cache"],
        embed_points=12,
    )
    build_site(tiny_run["results"], tmp_path / "drawn", cards=cards)
    html = (tmp_path / "drawn" / page.name).read_text()
    assert "bench diagnose --published" not in html and "<figcaption>" in html


def test_cooccurrence_figure_on_a_synthetic_multi_label_model():
    """No multi-label set is on disk: a synthetic one. A linear multi-label model on random
    images; its 'attack' is an FGSM step on the summed logits of labels 0 and 1, which turns
    both on together, so their co-occurrence must rise."""
    from benchmark.diagnostics.cooccurrence import cooccurrence_figure

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    x = torch.rand(40, 1, 8, 8)
    x_adv = x.clone().requires_grad_(True)
    model(x_adv)[:, :2].sum().backward()
    x_adv = (x + 0.5 * x_adv.grad.sign()).clamp(0, 1)
    with torch.no_grad():
        clean = (model(x).sigmoid() > 0.5).int().numpy()
        adv = (model(x_adv).sigmoid() > 0.5).int().numpy()
    fig = cooccurrence_figure(clean, adv, ["a", "b", "c", "d"], "a synthetic FGSM step")
    c, a = np.array(fig["matrices"]["clean"]), np.array(fig["matrices"]["adversarial"])
    assert (c == cooccurrence(clean)).all() and a[0, 1] > c[0, 1]
    assert a[0, 1] == int(((adv[:, 0] == 1) & (adv[:, 1] == 1)).sum())
    assert fig["geometry"]["cols"] == 3 and fig["_files"]["cooccurrence.png"][:4] == b"\x89PNG"


def test_a_training_defense_run_is_diagnosed_on_its_robust_model(
    tiny_models, shared_data, tmp_path
):
    """The result records the robust model's checkpoint (``model``) and the base model's
    (``base_model``): both are checked, and the maps are the robust model's."""
    from benchmark.training import TrainConfig, train_model

    zoo = tiny_models["zoo"]
    train_model(
        TrainConfig(
            dataset="breastmnist",
            arch="tiny_cnn",
            epochs=1,
            defense="pgd_at",
            defense_params={"steps": 1},
            init_from="tiny_cnn_breastmnist_28px_s0",
        ),
        data_dir=shared_data,
        zoo=zoo,
        progress=False,
    )
    doc = mrb.evaluate(
        "breastmnist",
        "tiny_cnn",
        attacks="pgd",
        eps=["8/255"],
        n_examples=12,
        defense="pgd_at",
        defense_params=["steps=1"],
        data_dir=shared_data,
        zoo=zoo.root,
        out_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        sanity_attack=False,
    )
    (path,) = list((tmp_path / "results").rglob(f"{doc['run_id']}.json"))
    report = diagnose(
        path, data_dir=shared_data, zoo=zoo.root, cache_dir=tmp_path / "cache", embed_points=10
    )
    assert report.recrafted == 0
    index, problems = read_diagnostics(path)
    assert problems == []
    assert index["model"]["checkpoint_sha256"] == doc["model"]["checkpoint_sha256"]
    assert index["model"]["base_checkpoint_sha256"] == doc["base_model"]["checkpoint_sha256"]
    saliency = next(f for f in index["figures"] if f["id"] == "saliency")
    assert (
        "defended CAM clean" in saliency["col_labels"] and "the robust model" in saliency["caption"]
    )


def test_an_adaptive_attack_leaves_the_base_model_in_eval_mode(tiny_models, shared_data, tmp_path):
    """The attack restores the mode of the pipeline it attacks; the pipeline is built in eval
    mode, so the shared base model is not left in training mode (where batch norm and dropout
    would change every later prediction, e.g. a figure's labels)."""
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.plan import build_plan
    from benchmark.evaluation.replay import config_from_result
    from benchmark.models.zoo import ModelZoo

    doc = mrb.evaluate(
        "breastmnist",
        "tiny_cnn",
        attacks="fgsm",
        eps=["8/255"],
        n_examples=8,
        defense="median_filter",
        threat_models=["oblivious", "adaptive"],
        data_dir=shared_data,
        zoo=tiny_models["zoo"].root,
        out_dir=tmp_path / "r",
        cache_dir=tmp_path / "c",
        sanity_attack=False,
    )
    plan = build_plan(
        config_from_result(doc),
        data_dir=shared_data,
        zoo=ModelZoo(tiny_models["zoo"].root),
        cache=AdversarialCache(tmp_path / "c"),
    )
    adaptive = next(p for p in plan.passes if p.threat_model.value == "adaptive")
    x = plan.split.images[:4].float().div(255.0)
    adaptive.attack(x, plan.split.labels[:4], seed=0)
    assert not plan.model.training and not plan.scorer.training
