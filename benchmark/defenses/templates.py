"""Skeletons of new submissions, one per kind (``bench new-submission ID --kind KIND``).

:func:`write_submission` creates ``<dir>/<id>/`` with ``submission.toml``, a ``defense.py``
that passes the conformance suite as written (a placeholder method to replace with one's own)
and a ``README.md`` with the sections a reviewer reads: method, paper section, parameters,
threat models claimed and the exact commands that validate and evaluate it on its track
(``mrb_linf_v2`` for a training defense, ``mrb_linf_adaptive_v2`` for the others; see
``docs/protocol.md``). The kinds:

* ``preprocessing``: ``purify(x)``, a blend of the image and its Gaussian blur, clipped;
* ``wrapper``: ``wrap(model)``, a module averaging the model's logits over the image and its
  mirror image;
* ``voting``: a :class:`~benchmark.defenses.base.VotingDefense`, a majority vote over
  Gaussian-noise copies (the template of ``submissions/README.md``, which a test keeps equal
  to this one);
* ``training``: ``train(model, x, y)``, a mix of clean and PGD cross-entropy built on
  :class:`~benchmark.defenses.adversarial_training.AdversarialTraining`.

The templates are string constants with ``$cls`` (class name) and ``$title`` (display name)
placeholders (:class:`string.Template`), so that the package needs no data files for them.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from string import Template

from benchmark.defenses.base import SubmissionError
from benchmark.results.protocols import CURRENT_PROTOCOL, track_protocol

KINDS = ("preprocessing", "wrapper", "voting", "training")
"""What ``bench new-submission --kind`` accepts (``voting`` is a wrapper that votes)."""
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""A submission id: snake_case, as every registry name."""

_META_PLACEHOLDERS = """\
        name="$title",
        authors=("You (method and implementation)",),
        paper="Your paper, Sec. 3",
        reference="https://example.org/paper Sec. 3",
        license="MIT",
        version="1.0","""

_PREPROCESSING = (
    '''\
"""A preprocessing defense: the image moved towards its Gaussian blur (a placeholder)."""

from __future__ import annotations

from torch import Tensor

from benchmark.defenses import Defense, DefenseMeta, SubmissionError
from benchmark.defenses.filters import gaussian_blur


class $cls(Defense):
    """Moves each image a share ``strength`` of the way to its Gaussian blur (standard
    deviation ``sigma`` pixels) and clips to [0, 1]."""

    meta = DefenseMeta(
        kind="preprocessing",
        randomized=False,  # True -> attacked with EOT; draw from self.generator(x.device)
        differentiable=True,  # False -> attacked with BPDA (identity, or purify_approx)
        forward_passes=1,
'''
    + _META_PLACEHOLDERS
    + """
        threat_models=("oblivious", "adaptive"),
        description="The image moved towards its Gaussian blur",
    )
    defaults = {"sigma": 1.0, "strength": 0.5}

    def setup(self) -> None:
        if float(self.params["sigma"]) <= 0 or not 0 <= float(self.params["strength"]) <= 1:
            raise SubmissionError("need sigma > 0 and 0 <= strength <= 1")

    def purify(self, x: Tensor) -> Tensor:
        strength = float(self.params["strength"])
        blurred = gaussian_blur(x, float(self.params["sigma"]))
        return (x + strength * (blurred - x)).clamp(0, 1)
"""
)

_WRAPPER = (
    '''\
"""A wrapper defense: the model's logits averaged over the image and its mirror (a placeholder)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.defenses import Defense, DefenseMeta


class ${cls}Classifier(nn.Module):
    """The defended classifier: [0, 1] NCHW batch in, (N, K) logits out."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: Tensor) -> Tensor:
        return (self.base(x) + self.base(x.flip(-1))) / 2


class $cls(Defense):
    """Test-time averaging of the logits over the image and its left-right mirror image."""

    meta = DefenseMeta(
        kind="wrapper",
        randomized=False,
        differentiable=True,
        forward_passes=2,  # base-model passes per image (the inference cost)
'''
    + _META_PLACEHOLDERS
    + """
        threat_models=("oblivious", "adaptive"),
        description="Logits averaged over the image and its mirror image",
    )
    defaults = {}  # no parameters: `bench evaluate` runs it as it is

    def wrap(self, model: nn.Module) -> ${cls}Classifier:
        return ${cls}Classifier(model)
"""
)

_VOTING = (
    '''\
"""Majority vote over Gaussian-noise copies (the voting pattern of MedRDF, Xu et al. 2022)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta, SubmissionError, VotingClassifier, VotingDefense


class ${cls}Classifier(VotingClassifier):
    """Votes over ``n`` noisy copies; the smoothed paths (``soft``, the vote ``apgd_vote``
    attacks) average ``attack_copies`` copies (``copy_logits``)."""

    @property
    def n_votes(self) -> int:
        return int(self.defense.params["n"])

    def _copies(self, x: Tensor, m: int) -> Tensor:
        gen = self.defense.generator(x.device)
        noise = torch.randn((m * len(x), *x.shape[1:]), generator=gen, device=x.device)
        sigma = float(self.defense.params["sigma"])
        return (x.repeat_interleave(m, dim=0) + sigma * noise).clamp(0, 1)

    def copy_logits(self, x: Tensor) -> Tensor:
        m = int(self.defense.params["attack_copies"])
        return self.base(self._copies(x, m)).view(len(x), m, -1)

    def votes(self, x: Tensor) -> Tensor:
        n = self.n_votes
        pred = self.base(self._copies(x, n)).argmax(dim=1).view(len(x), n)
        return F.one_hot(pred, self.base.num_classes).sum(dim=1)


class $cls(VotingDefense):
    """Majority vote over Gaussian-noise copies; abstains when the top two classes tie."""

    meta = DefenseMeta(
        kind="wrapper",
        randomized=True,
        differentiable=True,
        forward_passes=100,
'''
    + _META_PLACEHOLDERS
    + """
        threat_models=("oblivious", "adaptive"),
        description="Majority vote over Gaussian-noise copies",
    )
    defaults = {"sigma": 0.25, "n": 100, "attack_copies": 8}

    def setup(self) -> None:
        if float(self.params["sigma"]) <= 0 or int(self.params["n"]) < 1:
            raise SubmissionError("need sigma > 0 and n >= 1")

    def wrap(self, model: nn.Module) -> ${cls}Classifier:
        return ${cls}Classifier(self, model)

    def vote_report(self, counts: Tensor, labels: Tensor) -> dict:
        top = counts.topk(2, dim=1).values
        abstain = top[:, 0] == top[:, 1]
        correct = (counts.argmax(dim=1) == labels.cpu()) & ~abstain
        return {
            "abstained_mask": abstain,
            "abstain_rate": float(abstain.float().mean()),
            "accuracy_abstain_as_error": float(correct.float().mean()),
        }
"""
)

_TRAINING = (
    '''\
"""A training defense: clean and PGD cross-entropy mixed (the mixed objective of Goodfellow et
al., ICLR 2015, with a PGD inner attack; a placeholder for your loss)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.defenses import DefenseMeta, SubmissionError
from benchmark.defenses.adversarial_training import AdversarialTraining


class $cls(AdversarialTraining):
    """Minimise ``(1 - weight) CE(f(x), y) + weight CE(f(x'), y)``; ``x'`` comes from PGD on
    CE in the L-inf ``eps``-ball (the inner attack of ``AdversarialTraining``: model in eval
    mode, parameters frozen, ``steps`` sign steps of ``alpha`` from a uniform random start)."""

    meta = DefenseMeta(
        kind="training",
        randomized=False,
        differentiable=True,
        forward_passes=1,
'''
    + _META_PLACEHOLDERS
    + """
        threat_models=("adaptive", "transfer", "black_box"),
        description="Clean and PGD cross-entropy mixed",
    )
    defaults = {"eps": 8 / 255, "steps": 7, "alpha": None, "start": "uniform", "weight": 0.5}

    def setup(self) -> None:
        super().setup()  # checks eps, steps and start
        if not 0 <= float(self.params["weight"]) <= 1:
            raise SubmissionError("weight must be in [0, 1]")

    def objective(self, model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor) -> Tensor:
        weight = float(self.params["weight"])
        clean = F.cross_entropy(model(x), y)
        return (1 - weight) * clean + weight * F.cross_entropy(model(x_adv), y)
"""
)


@dataclass(frozen=True)
class _Kind:
    """What differs between the kinds: the code, the README's prose and the track."""

    code: str
    hook: str
    method: str
    parameters: tuple[tuple[str, str], ...]
    threat_models: str
    training: bool = False


_KINDS = {
    "preprocessing": _Kind(
        _PREPROCESSING,
        "purify(x)",
        "Each image is moved a share `strength` of the way to its Gaussian blur (standard "
        "deviation `sigma` pixels) and clipped to [0, 1]; the model then classifies it.",
        (
            ("sigma", "1.0: blur standard deviation in pixels"),
            ("strength", "0.5: 0 is the identity, 1 the blurred image"),
        ),
        "`oblivious` and `adaptive`. Deterministic (`randomized=False`) and differentiable "
        "(`differentiable=True`): the adaptive attack takes exact gradients through "
        "`purify`. A randomized defense is attacked with EOT; a non-differentiable one with "
        "BPDA (the identity, or your `purify_approx`).",
    ),
    "wrapper": _Kind(
        _WRAPPER,
        "wrap(model)",
        "The defended classifier averages the model's logits over the image and its "
        "left-right mirror image (two base-model passes per image).",
        (),
        "`oblivious` and `adaptive`. Deterministic and differentiable: the adaptive attack "
        "takes exact gradients through the wrapper's module.",
    ),
    "voting": _Kind(
        _VOTING,
        "wrap(model)",
        "`wrap` returns a `VotingClassifier` (`soft`, `votes`) and the defense reports its "
        "votes (`vote_report`). `n` copies of the image with Gaussian noise of standard "
        "deviation `sigma`, clipped to [0, 1], are classified by the model; the majority "
        "vote is the answer, and the defense abstains when the top two classes tie (an "
        "abstention counts as an error). Gradient attacks see `soft`, the log mean softmax "
        "over `attack_copies` copies.",
        (
            ("sigma", "0.25: noise standard deviation on the [0, 1] scale"),
            ("n", "100: copies voting per image"),
            ("attack_copies", "8: copies `soft` averages for gradient attacks"),
        ),
        "`oblivious` and `adaptive`. Randomized: attacked with EOT through `soft`, scored "
        "on the worst of 5 draws, and by Square (black box) and `apgd_vote` (APGD on the "
        "vote, aimed at the abstention threshold) under the adaptive-track protocol.",
    ),
    "training": _Kind(
        _TRAINING,
        "train(model, x, y)",
        "Every minibatch is attacked by PGD on the current model (`steps` sign steps of "
        "size `alpha`, default 2.5 `eps` / `steps`, from a uniform random start in the "
        "`eps`-ball), and the model minimises `(1 - weight) CE(f(x), y) + weight "
        "CE(f(x'), y)`.",
        (
            ("eps", "8/255: L-inf radius of the inner attack, [0, 1] pixel scale"),
            ("steps", "7: inner PGD steps"),
            ("alpha", "None: inner step size (None = 2.5 eps / steps)"),
            ("start", "uniform: random start of the inner attack (uniform, normal, none)"),
            ("weight", "0.5: weight of the adversarial term"),
        ),
        "`adaptive`, `transfer` and `black_box`: the robust model is attacked white-box "
        "(the protocol's adaptive pass), like any undefended model.",
        training=True,
    ),
}


def class_name(sid: str) -> str:
    """The defense's class name: the id in CamelCase (``noise_vote`` -> ``NoiseVote``)."""
    return "".join(part.capitalize() for part in sid.split("_") if part)


def display_name(sid: str) -> str:
    """A first display name: the id in words (``noise_vote`` -> ``Noise vote``)."""
    return " ".join(part for part in sid.split("_") if part).capitalize()


def track(kind: str) -> str:
    """The protocol id a submission of ``kind`` is ranked under (``docs/protocol.md``)."""
    return track_protocol(CURRENT_PROTOCOL, "training" if _kind(kind).training else "wrapper").id


def _kind(kind: str) -> _Kind:
    if kind not in _KINDS:
        raise SubmissionError(f"unknown submission kind '{kind}'; use one of {', '.join(KINDS)}")
    return _KINDS[kind]


def _paragraphs(*texts: str) -> str:
    """Markdown paragraphs, each filled to 96 columns."""
    return "\n\n".join(textwrap.fill(t, width=96) for t in texts if t)


def _readme(sid: str, kind: str) -> str:
    k = _kind(kind)
    params = "\n".join(f"| `{name}` | {text} |" for name, text in k.parameters)
    params = (
        "| parameter | default and meaning |\n|---|---|\n" + params
        if params
        else "None: the skeleton has no parameters (`defaults = {}`)."
    )
    data = "-d pneumoniamnist -m resnet18"
    commands = [f"bench validate {sid}"]
    if k.training:
        commands.append(f"bench train {data} --defense {sid}")
    commands.append(f"bench evaluate {data} --protocol {track(kind)} --defense {sid}")
    head = _paragraphs(
        "**Method.** What the defense does, in a paragraph a reviewer can check against the "
        f"code: the input, each step, the output. The skeleton (a `{kind}` defense, hook "
        f"`{k.hook}`). {k.method}",
        "**Paper.** Authors, *Title*, venue and year, and the section, algorithm and equations "
        "that `defense.py` implements (the class meta's `paper` and `reference` say the "
        "same). Name every choice the paper leaves open and what you chose.",
        "**Parameters.** The class's `defaults`, which `bench evaluate` uses; say where each "
        "value comes from (the paper's setting, a tuning on the validation split only).",
    )
    tail = _paragraphs(
        f"**Threat models claimed.** {k.threat_models} The claim is the class meta's "
        "`threat_models`.",
        "**How to evaluate.** From the repository root (or with `BENCH_SUBMISSIONS_DIR` "
        f"pointing at the folder that holds `{sid}/`), on the track of a `{kind}` defense, "
        f"`{track(kind)}` (docs/protocol.md), for each dataset of the boards (`breastmnist`, "
        "`retinamnist`, `pneumoniamnist`):",
    )
    after = _paragraphs(
        "`bench train` stores the robust model in the zoo (docs/model_zoo.md gives the recipe "
        "of the published ones: epochs, `--init-from`, `--select`); `bench evaluate` attacks "
        "it white-box."
        if k.training
        else "",
        "`bench leaderboard add RESULT.json` publishes a protocol run; a run that is not one "
        "(fewer images, cut budgets) is published unranked with `--exploratory`. "
        "CONTRIBUTING.md says how to send the submission and what the maintainers re-run.",
    )
    commands_block = "\n".join(commands)
    return (
        f"# {display_name(sid)} (`{sid}`)\n\n"
        f"<!-- A skeleton written by `bench new-submission {sid} --kind {kind}`.\n"
        "Replace every placeholder, in this file and in the class meta of defense.py (name,\n"
        "authors, paper, reference, licence), before you send it. -->\n\n"
        f"{head}\n\n{params}\n\n{tail}\n\n```bash\n{commands_block}\n```\n\n{after}\n"
    )


def render_submission(sid: str, kind: str) -> dict[str, str]:
    """The files of a new submission ``sid`` of ``kind``: file name -> text.

    Raises:
        SubmissionError: a bad id or an unknown kind.
    """
    if not ID_PATTERN.match(sid):
        raise SubmissionError(
            f"invalid submission id '{sid}': use a snake_case id such as 'my_defense'"
        )
    code = Template(_kind(kind).code).substitute(cls=class_name(sid), title=display_name(sid))
    return {
        "submission.toml": f'id = "{sid}"\nentry = "defense:{class_name(sid)}"\n',
        "defense.py": code,
        "README.md": _readme(sid, kind),
    }


def write_submission(sid: str, kind: str, root: str | Path) -> Path:
    """Write the skeleton of submission ``sid`` into ``root/sid/`` and return the folder.

    Raises:
        SubmissionError: a bad id, an unknown kind, or a folder that already exists (nothing is
            written then).
    """
    files = render_submission(sid, kind)
    folder = Path(root) / sid
    if folder.exists():
        raise SubmissionError(
            f"{folder} already exists; pick another id or remove the folder first"
        )
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


__all__ = [
    "ID_PATTERN",
    "KINDS",
    "class_name",
    "display_name",
    "render_submission",
    "track",
    "write_submission",
]
