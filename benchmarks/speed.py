"""Cost of the reverse term: time ``train()`` of each symmetric algorithm against its parent on one fixed rollout buffer.

Each pair is built with the same seed, fills its buffer once, then the two ``train()`` calls alternate
(the order flips every round) in one process. Before each timed call the model's parameters and optimizer state are
restored (untimed) to those after the warm-up, so every round of a model times the same work. The median of the
per-round time ratios is printed with its 95% bootstrap interval, the
ratio of the total times and the ratio of the fastest rounds (the least disturbed by other processes, which only
ever add time) as checks, and the load average. On CPU the clock is the process's CPU time (which other load on a
shared machine still inflates: compare numbers taken at a load average near 1), on CUDA wall time;
``--count-ops`` adds the number of PyTorch operators one train() dispatches, which no load can move.
Cases: SymPPO, SymA2C, SymRecurrentPPO and SymMaskablePPO with the 64x64 MLP on CartPole-v1, and SymPPO / SymA2C
with the Atari NatureCNN on random 84x84x4 observations.

    python benchmarks/speed.py                          # CPU, every case
    python benchmarks/speed.py --cases MLP --count-ops --markdown   # the table of benchmarks/README.md
    python benchmarks/speed.py --device cuda --check-syncs
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.utils import configure_logger

from sb3_symmetric import SymA2C, SymMaskablePPO, SymPPO, SymRecurrentPPO

# (case, parent, symmetric, env factory, n_envs, policy, hyperparameters): the paper's MuJoCo / Atari settings
# (docs/paper.rst, "Hyperparameters"); the sb3-contrib pairs take SymPPO's
CASES: list[tuple[str, type[BaseAlgorithm], type[BaseAlgorithm], Any, int, str, dict[str, Any]]] = [
    ("MLP CartPole", PPO, SymPPO, "CartPole-v1", 1, "MlpPolicy", dict(n_steps=2048, batch_size=64, n_epochs=10)),
    ("MLP CartPole", A2C, SymA2C, "CartPole-v1", 4, "MlpPolicy", dict(n_steps=8)),
    (
        "MLP CartPole",
        RecurrentPPO,
        SymRecurrentPPO,
        "CartPole-v1",
        1,
        "MlpLstmPolicy",
        dict(n_steps=2048, batch_size=64, n_epochs=10),
    ),
    (
        "MLP CartPole",
        MaskablePPO,
        SymMaskablePPO,
        "CartPole-v1",
        1,
        "MlpPolicy",
        dict(n_steps=2048, batch_size=64, n_epochs=10),
    ),
    ("Atari CNN 84x84x4", PPO, SymPPO, "image", 8, "CnnPolicy", dict(n_steps=128, batch_size=256, n_epochs=4)),
    ("Atari CNN 84x84x4", A2C, SymA2C, "image", 16, "CnnPolicy", dict(n_steps=5)),
]


def _image_env() -> FakeImageEnv:
    return FakeImageEnv(action_dim=6, screen_height=84, screen_width=84, n_channels=4, discrete=True)


def _filled_model(algo: type[BaseAlgorithm], env_id: Any, n_envs: int, policy: str, kwargs: dict, device: str) -> Any:
    env = make_vec_env(_image_env if env_id == "image" else env_id, n_envs=n_envs, seed=0)
    model = algo(policy, env, seed=0, device=device, **kwargs)
    model.set_logger(configure_logger(verbose=0))
    # one rollout (and one untimed train(), which also warms up); CartPole has no action masks: all actions are legal
    learn_kwargs = dict(use_masking=False) if isinstance(model, MaskablePPO) else {}
    model.learn(model.n_steps * n_envs, **learn_kwargs)
    return model


def _snapshot(model: Any) -> tuple[dict, dict]:
    """The policy's parameters and its optimizer's state, to give every timed ``train()`` the same starting point."""
    return copy.deepcopy(model.policy.state_dict()), copy.deepcopy(model.policy.optimizer.state_dict())


def _restore(model: Any, snapshot: tuple[dict, dict]) -> None:
    model.policy.load_state_dict(snapshot[0])  # copies into the parameters
    # the optimizer adopts the tensors it is given and updates them in place: give it a copy, keep the snapshot intact
    model.policy.optimizer.load_state_dict(copy.deepcopy(snapshot[1]))


def _median_interval(ratios: list[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of the per-round ratios."""
    values = np.asarray(ratios)
    draws = np.random.default_rng(seed).choice(values, size=(reps, len(values)))
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(low), float(high)


def _timed_train(model: Any, device: str) -> float:
    # On CPU, the process's own CPU time: other processes on a shared machine inflate wall time, not this
    clock = time.perf_counter if device.startswith("cuda") else time.process_time
    if device.startswith("cuda"):
        th.cuda.synchronize()
    start = clock()
    model.train()
    if device.startswith("cuda"):
        th.cuda.synchronize()
    return clock() - start


def _count_sync_warnings(model: Any) -> int:
    """Synchronizing CUDA calls made by one ``train()`` call, as reported by ``set_sync_debug_mode('warn')``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        th.cuda.set_sync_debug_mode("warn")
        try:
            model.train()
        finally:
            th.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _count_ops(model: Any) -> int:
    """PyTorch operators dispatched by one ``train()`` call, forward and backward: work that other load cannot move."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            self.n += 1
            return func(*args, **(kwargs or {}))

    with Count() as count:
        model.train()
    return count.n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds per PPO MLP case (x20 for A2C MLP)")
    parser.add_argument("--cnn-rounds", type=int, default=5, help="alternating rounds per CNN case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--check-syncs", action="store_true", help="count CUDA syncs per train() call (CUDA only)")
    parser.add_argument(
        "--count-ops", action="store_true", help="also count the PyTorch operators of one train() call of each"
    )
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--cases", default="", help="only the cases whose 'case pair' text contains this, e.g. MLP")
    args = parser.parse_args(argv)
    th.set_num_threads(args.threads)

    rows = []
    for case, parent, sym, env_id, n_envs, policy, kwargs in CASES:
        if args.cases not in f"{case} {sym.__name__} / {parent.__name__}":
            continue
        rounds = args.cnn_rounds if policy == "CnnPolicy" else args.rounds * (20 if parent is A2C else 1)
        base, ours = (_filled_model(algo, env_id, n_envs, policy, kwargs, args.device) for algo in (parent, sym))
        for _ in range(args.warmup):
            base.train()
            ours.train()
        # Every round starts from the same parameters and optimizer state, so each model repeats identical work:
        # trained on, the two would drift apart and time different computations (saturated or denormal values)
        snapshots = {id(m): _snapshot(m) for m in (base, ours)}
        ratios, base_times, sym_times = [], [], []
        for i in range(rounds):
            pair = (base, ours) if i % 2 == 0 else (ours, base)
            times = {}
            for model in pair:
                _restore(model, snapshots[id(model)])
                times[id(model)] = _timed_train(model, args.device)
            base_times.append(times[id(base)])
            sym_times.append(times[id(ours)])
            ratios.append(times[id(ours)] / times[id(base)])
        row = dict(
            case=case,
            pair=f"{sym.__name__} / {parent.__name__}",
            samples=n_envs * kwargs["n_steps"],
            base_ms=1e3 * statistics.median(base_times),
            sym_ms=1e3 * statistics.median(sym_times),
            ratio=statistics.median(ratios),
            interval=_median_interval(ratios),
            total_ratio=sum(sym_times) / sum(base_times),
            # other processes only ever add time: the fastest round of each is the least disturbed
            best_ratio=min(sym_times) / min(base_times),
            rounds=rounds,
            load=os.getloadavg()[0],
        )
        if args.count_ops:
            for model in (base, ours):
                _restore(model, snapshots[id(model)])
            row["ops"] = (_count_ops(ours), _count_ops(base))
        if args.check_syncs and args.device.startswith("cuda"):
            row["syncs"] = f"{_count_sync_warnings(ours)} vs {_count_sync_warnings(base)}"
        rows.append(row)
        print(
            f"{row['case']:18s} {row['pair']:14s} buffer {row['samples']:5d}: train() {row['base_ms']:8.1f} ms -> "
            f"{row['sym_ms']:8.1f} ms, median ratio {row['ratio']:.3f} [95% CI {row['interval'][0]:.3f}, "
            f"{row['interval'][1]:.3f}] (total {row['total_ratio']:.3f}, fastest rounds "
            f"{row['best_ratio']:.3f}) over {rounds} rounds, load average {row['load']:.1f}"
            + (f", operators per train() {row['ops'][0]} vs {row['ops'][1]}" if "ops" in row else "")
            + (f", syncs per train() {row['syncs']}" if "syncs" in row else ""),
            flush=True,
        )

    if args.markdown:
        device = th.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
        ops = " operators per train() (symmetric vs parent) |" if args.count_ops else ""
        print(
            f"\n| case ({device}) | pair | buffer | parent train() ms | symmetric train() ms | median ratio | 95% CI "
            f"| total ratio | fastest rounds | load average |{ops}"
        )
        print("|---|---|---|---|---|---|---|---|---|---|" + ("---|" if ops else ""))
        for r in rows:
            print(
                f"| {r['case']} | {r['pair']} | {r['samples']} | {r['base_ms']:.1f} | {r['sym_ms']:.1f} | {r['ratio']:.3f} "
                f"| {r['interval'][0]:.3f}-{r['interval'][1]:.3f} | {r['total_ratio']:.3f} | {r['best_ratio']:.3f} "
                f"| {r['load']:.1f} |" + (f" {r['ops'][0]} vs {r['ops'][1]} |" if ops else "")
            )


if __name__ == "__main__":
    main()
