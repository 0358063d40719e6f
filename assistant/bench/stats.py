"""The bench's uncertainty: 95 % intervals, paired tests and standard errors, so a figure says how far to trust it.

Pure functions over numbers and numpy arrays (no scipy: the few distributions needed are here, exactly or to
four digits). Every interval is 95 %. Why each estimator:

* **Proportions** (task accuracy of one variant): the Wilson score interval. The normal ("Wald") interval
  collapses to zero width at 0 % and 100 % and undercovers on the ~70 items of the task set; Wilson does not.
* **Accuracy difference between two variants**: both answered the *same* items, so the test is paired.
  McNemar's exact test uses only the discordant items (``b``: the candidate wrong where the reference was
  right, ``c``: the reverse), a binomial(b + c, 1/2) under "no difference", summed exactly. The interval is a
  paired percentile bootstrap over items (seeded: the same vectors always give the same interval), which
  keeps the pairing the unpaired Wilson intervals would ignore.
* **Per-token figures** (KLD, top-1 agreement, PPL ratio): ``*_se`` is the plain standard error of the mean
  over tokens, ``sqrt(var / (n - 1))``, the estimator llama.cpp's ``llama-perplexity --kl-divergence`` prints
  after ``±``, so the two can be compared directly. Neighbouring tokens are correlated, which makes that se
  too small; the ``*_lo`` / ``*_hi`` interval therefore uses *batch means*: the tokens are cut into
  contiguous blocks, the block means are treated as the independent samples, and the interval is a t-interval
  over them. It is deterministic (no resampling) and widens exactly as much as the correlation requires.
* **Repetitions** (tokens per second, TTFT, load time over a few runs): a t-interval, since there are 2 to 5
  values and a normal quantile would understate the spread.
* **Paired ratios against another program** (``benchmarks/serve_batch.py``: each round's ours / theirs, timed
  back to back): the median, and the distribution-free interval of the median from the order statistics
  (``median_interval``), since a round on a busy machine can be off by far more than a normal tail allows.
* **PER**: its interval is propagated in log space from each axis's own interval (PER is a geometric mean,
  so its log is a mean of log ratios and their variances add).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: the tables and the verdict read rows without it
    import numpy as np

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile
BOOTSTRAP_RESAMPLES = 4000  # percentile bootstrap: the 2.5 % and 97.5 % points each rest on 100 resamples
BLOCK = 64  # tokens per batch-means block: well beyond the span over which a token's losses correlate
MIN_BLOCKS = 8  # fewer blocks than this gives a too-rough block spread: fall back to single tokens

# The two-sided 95 % t quantile (0.975 point) for 1..30 degrees of freedom; beyond, Cornish-Fisher (below).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788, 2.1604,
    2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
    2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t975(df: int) -> float:
    """The 97.5 % point of Student's t with ``df`` degrees of freedom (table to 30, then the Cornish-Fisher
    expansion, which is within 1e-4 of the exact value there and converges to the normal quantile)."""
    if df < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = Z95, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def wilson(k: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of ``k`` successes in ``n`` trials; (0, 1) when there are no trials."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes in {n} trials")
    p = k / n
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at k = 0 or k = n one bound is exactly 0 or 1; clamp away the float rounding
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts: twice the smaller binomial(b + c, 1/2)
    tail, capped at 1 (b = c = 0: no evidence either way, p = 1)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedDiff:
    """Accuracy of a candidate minus its reference's, on the same items (fractions, not points)."""

    diff: float
    lo: float
    hi: float
    p: float  # exact McNemar, two-sided
    significant: bool  # p < 0.05
    b: int  # items the reference got right and the candidate wrong
    c: int  # items the candidate got right and the reference wrong
    n: int


def paired_accuracy(cand: Sequence[bool], ref: Sequence[bool], seed: int = 0) -> PairedDiff:
    """``cand`` minus ``ref`` accuracy over the same items: McNemar's exact p and a paired bootstrap interval.

    The bootstrap resamples items (each keeping both answers), so an item both variants find hard counts once,
    as it should. Identical vectors give diff 0, interval [0, 0], p = 1."""
    import numpy as np

    if len(cand) != len(ref):
        raise ValueError(f"paired vectors differ in length: {len(cand)} and {len(ref)}")
    n = len(cand)
    c_arr, r_arr = np.asarray(cand, dtype=bool), np.asarray(ref, dtype=bool)
    b = int(np.sum(r_arr & ~c_arr))
    c = int(np.sum(c_arr & ~r_arr))
    p = mcnemar_p(b, c)
    if n == 0:
        return PairedDiff(0.0, 0.0, 0.0, 1.0, False, 0, 0, 0)
    d = c_arr.astype(np.int8) - r_arr.astype(np.int8)
    diff = float(d.mean())
    if b + c == 0:
        lo = hi = 0.0
    else:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
        lo, hi = (float(x) for x in np.percentile(means, [2.5, 97.5]))
        lo, hi = min(lo, diff), max(hi, diff)  # a percentile interval can miss a skewed point by a hair
    return PairedDiff(diff, lo, hi, p, p < 0.05, b, c, n)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sd, lo, hi) of repeated measurements: a 95 % t-interval of the mean.

    One value has no spread to measure: sd 0 and lo = hi = mean, which reads as "measured once", not as
    "exact" (the table shows no ± then)."""
    import numpy as np

    if not values:
        raise ValueError("no values")
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) == 1:
        return mean, 0.0, mean, mean
    sd = float(arr.std(ddof=1))
    half = t975(len(arr) - 1) * sd / math.sqrt(len(arr))
    return mean, sd, mean - half, mean + half


def median_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95 % interval of the median of independent values from their order statistics: with the values
    sorted, ``[x_(k), x_(n+1-k)]`` for the largest ``k`` whose coverage ``1 - 2 P(Binomial(n, 1/2) < k)`` is at
    least 95 %, whatever their distribution. Under six values even the whole range covers less (five:
    93.75 %); it is returned then, as the widest interval the values give."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    n = len(ordered)

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while k < (n + 1) // 2 and coverage(k + 1) >= 0.95:
        k += 1
    return ordered[k - 1], ordered[n - k]


def se_of_mean(x: np.ndarray) -> float:
    """llama-perplexity's ``±``: sqrt(var / (n - 1)) with the population variance, i.e. sd(ddof=1) / sqrt(n)."""
    import numpy as np

    n = len(x)
    if n < 2:
        return 0.0
    return float(math.sqrt(max(float(np.var(x)), 0.0) / (n - 1)))


def block_interval(x: np.ndarray, block: int = BLOCK) -> tuple[float, float]:
    """A 95 % batch-means interval for the mean of a correlated series: a t-interval over contiguous block
    means (the tail of a series shorter than a whole block joins the last block). With fewer than
    ``MIN_BLOCKS`` blocks, the blocks are single tokens (the plain se, t-scaled)."""
    import numpy as np

    n = len(x)
    mean = float(x.mean()) if n else 0.0
    if n < 2:
        return mean, mean
    if n // block < MIN_BLOCKS:
        block = 1
    k = n // block
    means = np.array([x[i * block : (i + 1) * block if i < k - 1 else n].mean() for i in range(k)])
    half = t975(k - 1) * float(means.std(ddof=1)) / math.sqrt(k)
    return mean - half, mean + half


def token_stats(
    kld: np.ndarray, nll_cand: np.ndarray, nll_ref: np.ndarray, same_top1: np.ndarray, block: int = BLOCK
) -> dict[str, Any]:
    """The quality figures of a candidate against its reference, from one value per scored token.

    Keys are the row keys: ``kld`` (mean KL divergence, reference || candidate, nats) with ``kld_se``,
    ``kld_lo``/``kld_hi``, ``kld_p99``, ``kld_max``; ``top1_agreement`` with ``_se``/``_lo``/``_hi``;
    ``ppl_ratio`` = exp(mean(nll_cand - nll_ref)) with ``ppl_ratio_se`` (the se of the *log* ratio, as
    llama-perplexity prints ``ln(PPL(Q)/PPL(base))``) and ``_lo``/``_hi`` (the exponentiated log interval);
    ``ppl`` of the candidate and ``eval_tokens``. See the module docstring for the estimators."""
    import numpy as np

    kld = np.asarray(kld, dtype=float)
    diff = np.asarray(nll_cand, dtype=float) - np.asarray(nll_ref, dtype=float)
    agree = np.asarray(same_top1, dtype=float)
    n = len(kld)
    if n == 0 or len(diff) != n or len(agree) != n:
        raise ValueError("token arrays must be non-empty and of one length")
    kld_lo, kld_hi = block_interval(kld, block)
    top_lo, top_hi = block_interval(agree, block)
    log_lo, log_hi = block_interval(diff, block)
    log_ratio = float(diff.mean())
    return {
        "eval_tokens": n,
        "kld": float(kld.mean()),
        "kld_se": se_of_mean(kld),
        "kld_lo": max(0.0, kld_lo),  # a divergence is never negative
        "kld_hi": kld_hi,
        "kld_p99": float(np.percentile(kld, 99)),
        "kld_max": float(kld.max()),
        "top1_agreement": float(agree.mean()),
        "top1_agreement_se": se_of_mean(agree),
        "top1_agreement_lo": max(0.0, top_lo),
        "top1_agreement_hi": min(1.0, top_hi),
        "ppl_ratio": math.exp(log_ratio),
        "ppl_ratio_se": se_of_mean(diff),
        "ppl_ratio_lo": math.exp(log_lo),
        "ppl_ratio_hi": math.exp(log_hi),
        "ppl": math.exp(float(np.mean(nll_cand))),
    }


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None: stored rows are read back from JSON and may hold anything."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def half_width(row: Mapping[str, Any], key: str) -> float | None:
    """Half the 95 % interval of ``row[key]`` from ``key_lo``/``key_hi``, or None when the row has none."""
    lo, hi = number(row.get(f"{key}_lo")), number(row.get(f"{key}_hi"))
    return None if lo is None or hi is None else (hi - lo) / 2
