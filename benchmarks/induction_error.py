"""How far sampled induction's estimate of the induced policy is from the truth.

For a fixed policy network Q(a | x̄, h) and rollouts whose hidden-part belief π(h | x̄) is known in closed
form (:mod:`rlimm.envs.induction_truth`), it compares each estimator's Q̂(·|x̄) — the average of Q over the
hidden parts a draw picks, with the draw's weights — with the exact Q̄(·|x̄) = E[Q(·|x̄, h) | x̄]
(Gauss–Hermite quadrature or enumeration over h), as KL(exact ‖ estimate) per state of the current rollout:
its mean, and its 10th and 90th percentiles over the states. Also printed: the share of drawn neighbours
that came from the state's own episode.

Cases:
- ``trajectory``: continuous x̄ and h, both smooth along an episode; h = 0.8·x̄ + noise, the noise nearly
  fixed within an episode (lag-one correlation 0.99), so a state's nearest neighbours in visible space are
  its own episode's neighbouring steps, whose hidden part is nearly its own.
- ``episode-fixed``: the issue's toy: h fixed per episode and independent of x̄.
- ``discrete``: 4 visible contexts, every match at distance 0, h ∈ {0, 1} fixed per episode, Bernoulli(0.5)
  but 1 in env 0's first episode: the case the tie-breaking fix is for.

Estimators: ``knn-old`` (ties to the lowest rows, no exclusion: the behaviour before the fixes),
``knn-ties`` (ties at random), ``knn-ties-exclude-W`` (and no neighbour within W steps of the state in its
own episode; ``episode``: none from its episode), ``marginal``. Over k ∈ {1, 4, 16, 64}, pools of 1, 4 and 16
rollouts of 512 steps (PPO/A2C's pool option: the current rollout is the batch), and SAC's pool: a 256-row
minibatch from a 50 000-step replay buffer, alone or with 3 or 15 more minibatches' worth of rows.

    .venv/bin/python benchmarks/induction_error.py            # the full table (about a minute)
    .venv/bin/python benchmarks/induction_error.py --quick    # fewer settings
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rlimm.agents.imm.draws import Draw, Trajectories, knn_all, marginal
from rlimm.envs.induction_truth import ContinuousTruth, DiscreteTruth, TruthRollout, kl_to_truth

CASES = {
    "trajectory": ContinuousTruth(rho_visible=0.97, rho_hidden=0.99, slope=0.8, noise=1.0),
    "episode-fixed": ContinuousTruth(rho_visible=0.97, rho_hidden=1.0, slope=0.0, noise=1.0),
    "discrete": DiscreteTruth(first_episode_hidden=1.0),
}
ROLLOUT = 512  # steps of one rollout (the batch whose induced policy is estimated)
EVALUATED = 512  # states of it at which the KL is measured


def policy_network(seed: int = 0, n_actions: int = 3) -> torch.nn.Module:
    """A fixed full policy Q(a | x̄, h): an MLP on (x̄, h) whose action depends strongly on both."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, n_actions))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(3.0)
    return net.eval()


def probs_of(net: torch.nn.Module):  # noqa: ANN201 - the callable kl_to_truth takes
    @torch.no_grad()
    def probs(visible: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.concatenate([visible, hidden], axis=1), dtype=torch.float32)
        return torch.softmax(net(x).double(), dim=-1).numpy()

    return probs


def draw_for(estimator: str, rollout: TruthRollout, rows: int, k: int, seed: int, discrete: bool) -> Draw:
    """The estimator's draw for the first ``rows`` rows of the pool ``rollout`` (the current rollout)."""
    features = torch.as_tensor(rollout.visible)
    discrete = torch.tensor([discrete])
    trajectories = Trajectories(torch.as_tensor(rollout.episode), torch.as_tensor(rollout.step))
    generator = torch.Generator().manual_seed(seed)
    if estimator == "marginal":
        draw = marginal(features[:rows], features, k, discrete, generator)
        same = trajectories.episode[draw.index] == trajectories.episode[:rows, None]
        return Draw(draw.index, draw.weights, draw.distances, same)
    exclude = None
    if "-exclude-" in estimator:
        window = estimator.rsplit("-", 1)[1]
        exclude = float("inf") if window == "episode" else float(window)
    return knn_all(
        features,
        k,
        discrete,
        rows=rows,
        ties=None if estimator == "knn-old" else generator,
        trajectories=trajectories,
        exclude=exclude,
    )


def measure(case: str, estimator: str, k: int, pool: TruthRollout, rows: int, net, seed: int) -> dict:
    truth = CASES[case]
    draw = draw_for(estimator, pool, rows, k, seed, isinstance(truth, DiscreteTruth))
    evaluated = np.arange(min(rows, EVALUATED))
    kl = kl_to_truth(
        probs_of(net),
        truth,
        pool,
        evaluated,
        draw.index[: len(evaluated)].numpy(),
        draw.weights[: len(evaluated)].double().numpy(),
    )
    return {
        "kl": float(kl.mean()),
        "p10": float(np.percentile(kl, 10)),
        "p90": float(np.percentile(kl, 90)),
        "own_episode": float(draw.rows(torch.as_tensor(evaluated)).own_episode_share()),
    }


def sac_pool(case: str, minibatches: int, seed: int) -> TruthRollout:
    """SAC's pool: a 256-row minibatch of a 50 000-step replay buffer, then (minibatches − 1) × 256 more
    rows drawn from it (the first 256 rows are the batch)."""
    truth = CASES[case]
    replay = truth.sample(50_048 // truth.length * truth.length, seed)
    rows = np.random.default_rng(seed).choice(len(replay), size=256 * minibatches, replace=False)
    return TruthRollout(replay.visible[rows], replay.hidden[rows], replay.episode[rows], replay.step[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k = 16 only, fewer pools and seeds")
    parser.add_argument("--seeds", type=int, default=3, help="rollouts per setting (the mean is printed)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    net = policy_network()
    ks = [16] if args.quick else [1, 4, 16, 64]
    pools = [1, 4] if args.quick else [1, 4, 16]
    estimators = ["knn-old", "knn-ties", "knn-ties-exclude-5", "knn-ties-exclude-20"]
    estimators += ["knn-ties-exclude-episode", "marginal"]
    seeds = range(1 if args.quick else args.seeds)

    print("| case | pool | estimator | k | KL(exact ‖ estimate) mean | p10 | p90 | own-episode share |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    per_method: dict[str, list[float]] = {}
    for case in CASES:
        settings = [(f"{m} rollout(s)", m) for m in pools] + [(f"SAC {m}×256", m) for m in (1, 4, 16)]
        for pool_name, m in settings:
            sac = pool_name.startswith("SAC")
            pools_by_seed = [
                sac_pool(case, m, s) if sac else CASES[case].sample(ROLLOUT * m, s) for s in seeds
            ]
            rows = 256 if sac else ROLLOUT
            for estimator in estimators:
                for k in ks:
                    results = [
                        measure(case, estimator, k, p, rows, net, s)
                        for s, p in zip(seeds, pools_by_seed, strict=True)
                    ]
                    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
                    print(
                        f"| {case} | {pool_name} | {estimator} | {k} | {mean['kl']:.4f} | "
                        f"{mean['p10']:.4f} | {mean['p90']:.4f} | {mean['own_episode']:.2f} |"
                    )
                    if k == 16 and pool_name in ("1 rollout(s)", "4 rollout(s)"):
                        per_method.setdefault((estimator, pool_name), []).append(mean["kl"])
    print(f"\n{time.perf_counter() - start:.0f} s")
    for estimator in estimators:
        one, four = (np.mean(per_method.get((estimator, f"{m} rollout(s)"), [np.nan])) for m in (1, 4))
        print(
            f"{estimator}: mean KL to the truth {one:.4f} from one {ROLLOUT}-step rollout, {four:.4f} from "
            f"four (k = 16, mean over the {len(CASES)} cases)"
        )
    default = np.mean(per_method[("knn-ties-exclude-20", "1 rollout(s)")])
    print(f"rlimm's defaults (knn, ties at random, exclude 20, pool 1, k = 16): {default:.4f}")


if __name__ == "__main__":
    main()
