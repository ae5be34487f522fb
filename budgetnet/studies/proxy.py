"""Proxy fidelity: does the search's short training rank candidates as a longer one does?

:func:`proxy_fidelity` samples distinct equal-cost candidates of a space (the baseline
first, then random ones inside the budget), trains each with the short recipe (what the
search scores) and twice with the long one (two seeds: the second run gives the noise
ceiling, how well the long training agrees with itself), and reports Kendall's tau and
Spearman's rho between the rankings with bootstrap 95 % intervals (resampling the
candidates). A proxy whose tau is near zero does not rank candidates at all; one near the
ceiling ranks them as well as the long training can.

Example:
    >>> rank_agreement([1, 2, 3, 4], [1, 2, 3, 4], boot=50)["kendall"]["value"]
    1.0
"""

from __future__ import annotations

import sys

import numpy as np
import optuna

from budgetnet.checks import is_int
from budgetnet.errors import SearchError


def sample_candidates(space, count: int, seed: int = 0) -> list:
    """The baseline, then distinct random candidates inside the budget, in sampling order.

    Example:
        >>> from search_spaces.base import get_space
        >>> archs = sample_candidates(get_space("small", input_shape=(1, 16, 16), num_classes=10), 3)
        >>> len(archs), len({arch.fingerprint() for arch in archs})
        (3, 3)
    """
    archs, seen = [space.baseline], {space.baseline.fingerprint()}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(100 * count):
        if len(archs) >= count:
            break
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, 0.0)
        if space.budget.admits(arch) and arch.fingerprint() not in seen:
            seen.add(arch.fingerprint())
            archs.append(arch)
    return archs


def rank_agreement(scores, reference, boot: int = 1000, seed: int = 0) -> dict:
    """Kendall's tau and Spearman's rho of two score lists, each with a bootstrap 95 %
    interval (percentile method, ``boot`` resamples of the candidates).

    Example:
        >>> result = rank_agreement([0.9, 0.8, 0.7, 0.6], [0.6, 0.7, 0.8, 0.9], boot=50)
        >>> result["kendall"]["value"], result["spearman"]["value"]
        (-1.0, -1.0)
    """
    from scipy.stats import kendalltau, spearmanr

    a, b = np.asarray(scores, dtype=float), np.asarray(reference, dtype=float)
    rng = np.random.default_rng(seed)
    result = {}
    for name, statistic in (("kendall", kendalltau), ("spearman", spearmanr)):
        samples = []
        for _ in range(boot):
            index = rng.integers(0, len(a), len(a))
            if np.ptp(a[index]) > 0 and np.ptp(b[index]) > 0:
                samples.append(float(statistic(a[index], b[index]).statistic))
        low, high = (np.percentile(samples, [2.5, 97.5]) if samples else (np.nan, np.nan))
        value = float(statistic(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")
        result[name] = {"value": value, "low": float(low), "high": float(high)}
    return result


def proxy_fidelity(space, data, *, archs: int = 12, short_epochs: int = 3, long_epochs: int = 15,
                   recipe: str = "quick", seed: int = 0, device: str = "auto", progress: bool = True) -> dict:  # fmt: skip
    """Train ``archs`` candidates of ``space`` short and long (twice) and compare the rankings.

    Returns:
        ``candidates`` (per candidate ``notation``, ``ratio``, ``short``: validation
        accuracy of the short run, ``long`` and ``long_again``: test accuracy of the two
        long runs), ``short_vs_long`` and ``noise_ceiling`` (:func:`rank_agreement`), ``seconds``.

    Raises:
        SearchError: fewer than 4 candidates, or epochs that are not whole numbers >= 1.

    Example:
        >>> from budgetnet.training.data import load_data
        >>> from search_spaces.base import get_space
        >>> data = load_data("digits", image_size=8, limit=60)
        >>> space = get_space("small", input_shape=data.input_shape, num_classes=10)
        >>> report = proxy_fidelity(space, data, archs=4, short_epochs=1, long_epochs=1, progress=False)
        >>> len(report["candidates"]), sorted(report["short_vs_long"])
        (4, ['kendall', 'spearman'])
    """
    import time

    from budgetnet.cost.complexity import complexity
    from budgetnet.training.recipes import get_recipe
    from budgetnet.training.train import evaluate, fit

    if not is_int(archs, 4):
        raise SearchError(f"archs={archs!r} is invalid; expected a whole number >= 4 (candidates to rank)")
    for name, value in (("short_epochs", short_epochs), ("long_epochs", long_epochs)):
        if not is_int(value, 1):
            raise SearchError(f"{name}={value!r} is invalid; expected a whole number >= 1")
    started = time.perf_counter()
    chosen = sample_candidates(space, archs, seed)
    base = complexity(space.baseline).conv_macs
    rows = []
    for index, arch in enumerate(chosen):
        row = {"notation": arch.notation(), "ratio": complexity(arch).conv_macs / base}
        short = fit(arch, data, get_recipe(recipe, short_epochs), seed=seed, device=device, progress=False)
        row["short"] = short.val_accuracy
        for key, run_seed in (("long", seed), ("long_again", seed + 1)):
            result = fit(arch, data, get_recipe(recipe, long_epochs), seed=run_seed, device=device, progress=False)
            row[key] = 0.0 if result.diverged else evaluate(result.model, data, device=device)["accuracy"]
        rows.append(row)
        if progress:
            print(f"proxy {index + 1}/{len(chosen)}: short {row['short']:.4f}, long {row['long']:.4f} / "
                  f"{row['long_again']:.4f}  {row['notation']}", file=sys.stderr, flush=True)  # fmt: skip
    return {
        "space": space.name,
        "data": str(data.name),
        "short_epochs": short_epochs,
        "long_epochs": long_epochs,
        "candidates": rows,
        "short_vs_long": rank_agreement([r["short"] for r in rows], [r["long"] for r in rows]),
        "noise_ceiling": rank_agreement([r["long_again"] for r in rows], [r["long"] for r in rows]),
        "seconds": time.perf_counter() - started,
    }
