"""W′ balance: how much of the work capacity above critical power remains, second by second.

Differential form (Skiba, P. F., Fulford, J., Clarke, D. C., Vanhatalo, A. & Jones, A. M. "Intramuscular
determinants of the ability to recover work capacity above critical power", *Eur J Appl Physiol* 115(4), 2015;
Froncioni & Clarke's formulation), as GoldenCheetah implements it in ``src/Metrics/WPrime.cpp``
(``WPrime::setWatts``, the non-integral branch; GPL-2.0, read for the method only), per second with power P:

* P ≥ CP (expenditure): W′bal ← W′bal − (P − CP)
* P < CP (recovery): W′bal ← W′bal + (CP − P) · (W′ − W′bal) / W′

so the balance falls by exactly the work done above CP and recovers exponentially towards W′ (never above it),
faster the further power is below CP. It can go below 0 when CP or W′ is set too low (GoldenCheetah keeps such
values too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WPrimeBalanceSummary:
    """The lowest point of a ride's W′ balance.

    Attributes:
        min_j: the lowest balance (J).
        min_at_s: seconds from the start of the series to that point (its index at 1 Hz; the first if tied).
        min_fraction: ``min_j / w_prime_j`` (1 = untouched, 0 = exhausted).
    """

    min_j: float
    min_at_s: int
    min_fraction: float


def w_prime_balance(power_w: npt.NDArray[np.float64], cp_w: float, w_prime_j: float) -> npt.NDArray[np.float64]:
    """W′ balance (J) after each second of a 1 Hz power series, by Skiba's differential form.

    The series should be on clock time with pauses at 0 W (:func:`training.power_curve.zero_filled_power_w`):
    a stop is recovery, as in GoldenCheetah, which fills recording gaps with zeros before computing W′bal.

    Args:
        power_w: float shape ``(n,)``, 1 Hz power in watts (NaN read as 0 W).
        cp_w: critical power (W), > 0.
        w_prime_j: W′ (J), > 0; the balance starts full at this value.

    Returns:
        float64 shape ``(n,)``: the balance in joules at the end of each second.

    Raises:
        ValueError: if ``cp_w`` or ``w_prime_j`` is not positive.
    """
    if not cp_w > 0 or not w_prime_j > 0:
        raise ValueError(f"cp_w and w_prime_j must be > 0, got {cp_w}, {w_prime_j}")
    power = np.nan_to_num(np.asarray(power_w, dtype=np.float64), nan=0.0)
    below = cp_w - power  # > 0 when recovering
    balance = np.empty(power.size)
    w_bal = float(w_prime_j)
    # A sequential recurrence (each second depends on the last): a plain loop, about 1 µs a second.
    for i, under_w in enumerate(below.tolist()):
        if under_w > 0:
            w_bal += under_w * (w_prime_j - w_bal) / w_prime_j
        else:
            w_bal += under_w
        balance[i] = w_bal
    return balance


def summarise_w_prime_balance(balance_j: npt.NDArray[np.float64], w_prime_j: float) -> WPrimeBalanceSummary | None:
    """The minimum of a W′ balance series and when it occurred.

    Args:
        balance_j: float shape ``(n,)``, from :func:`w_prime_balance`.
        w_prime_j: the W′ (J) the balance was computed with, > 0.

    Returns:
        The summary, or None for an empty series.

    Raises:
        ValueError: if ``w_prime_j`` is not positive.
    """
    if not w_prime_j > 0:
        raise ValueError(f"w_prime_j must be > 0, got {w_prime_j}")
    balance = np.asarray(balance_j, dtype=np.float64)
    if balance.size == 0:
        return None
    at = int(np.argmin(balance))
    return WPrimeBalanceSummary(min_j=float(balance[at]), min_at_s=at, min_fraction=float(balance[at]) / w_prime_j)
