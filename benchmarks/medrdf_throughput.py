"""Figure 2: MedRDF voting cost. Time per image at n copies over n times the bare forward time
per image (target <= 1.1), and the batched implementation against a straightforward loop that
classifies one noisy copy at a time; all three with the weights in the scoring layout
(channels-last on the CPU: benchmark.models.inference.scoring_layout). Also the 3 x 3 median
of all the copies, the exchange network the votes use against the sort-based path."""

from __future__ import annotations

import torch
from common import ROOT, best_time, report, test_batch, zoo_model

from benchmark.defenses import read_submission
from benchmark.defenses.filters import _median9, _median_sorted
from benchmark.models.inference import scoring_layout

N = 256


def main() -> None:
    model = zoo_model()
    x, _ = test_batch(n=16)
    defense = read_submission(ROOT / "submissions" / "medrdf").build(seed=0, n=N)
    wrapper = defense.wrap(model)
    big = x.repeat_interleave(N, dim=0)

    def bare() -> None:
        with torch.no_grad():
            for i in range(0, len(big), 4096):
                model(big[i : i + 4096])

    def votes() -> None:
        defense.reseed(0)
        wrapper.votes(x)

    def per_copy() -> None:  # the reference: one noisy copy per forward pass, 2 images
        defense.reseed(0)
        with torch.no_grad():
            for img in x[:2]:
                for _ in range(N):
                    model(wrapper._copies(img[None], 1))

    with scoring_layout(model) as layout:
        big = big.contiguous(memory_format=layout)
        t_bare = best_time(bare, repeat=2) / len(x)
        t_votes = best_time(votes, repeat=2) / len(x)
        t_loop = best_time(per_copy, repeat=1, warmup=0) / 2
    padded = torch.nn.functional.pad(big.contiguous(), (1, 1, 1, 1), mode="reflect")
    with torch.no_grad():
        t_network = best_time(lambda: _median9(padded))
        t_sorted = best_time(lambda: _median_sorted(padded, 3))
    report(
        "medrdf",
        {
            "n_copies": N,
            "layout": str(layout).removeprefix("torch."),
            "bare_forward_ms_per_copy": round(1000 * t_bare / N, 3),
            "votes_ms_per_image": round(1000 * t_votes, 1),
            "votes_over_bare (target <= 1.1)": round(t_votes / t_bare, 3),
            "per_copy_loop_over_votes": round(t_loop / t_votes, 2),
            "median3x3_network_speedup_vs_sorted": round(t_sorted / t_network, 2),
        },
    )


if __name__ == "__main__":
    main()
