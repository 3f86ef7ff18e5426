"""How far torchrs may be from TF on a comparison, and why: one record, its named instances.

A numeric value passes when ``|torchrs - TF| <= atol + rtol * |TF|`` (TF is the reference); an
agreement (top-K identifiers) passes when the agreeing fraction is at least ``min_agreement``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """How far torchrs may be from TFRS on one check, and why.

    Args:
        atol: absolute slack.
        rtol: slack relative to ``|tfrs|``.
        reason: why this much slack is legitimate (and what a real bug would look like).

    >>> tol = Tolerance(atol=1e-6, rtol=1e-5, reason="float32 summation order")
    >>> tol.allows(10.0, 10.00005), tol.allows(10.0, 10.0002), tol.describe()
    (True, False, 'atol 1e-06 + rtol 1e-05')
    """

    atol: float
    rtol: float
    reason: str

    def allows(self, tf_value: float, torch_value: float) -> bool:
        """Whether ``torch_value`` is within tolerance of the reference ``tf_value`` (NaN never is)."""
        return abs(torch_value - tf_value) <= self.atol + self.rtol * abs(tf_value)

    def bound(self, reference: np.ndarray) -> np.ndarray:
        """The largest difference allowed at each reference value: ``atol + rtol * |reference|``."""
        return self.atol + self.rtol * np.abs(np.asarray(reference, np.float64))

    def describe(self) -> str:
        parts = []
        if self.atol:
            parts.append(f"atol {self.atol:g}")
        if self.rtol:
            parts.append(f"rtol {self.rtol:g}")
        return " + ".join(parts) or "exact"


@dataclass(frozen=True)
class Agreement:
    """The least fraction of items (e.g. queries' top-K lists) that must agree, and why.

    >>> Agreement(1.0, "same weights, same candidates").allows(0.99)
    False
    """

    min_agreement: float
    reason: str

    def allows(self, fraction: float) -> bool:
        return fraction >= self.min_agreement

    def describe(self) -> str:
        return f">= {self.min_agreement:g}"


#: The converter's built-in verification (layer by layer and translated graphs): one forward pass
#: of the written checkpoint against TF on a small sampled batch.
CONVERTER_TOLERANCE = Tolerance(
    atol=1e-6,
    rtol=1e-5,
    reason="the same float32 ops from identical weights, summed in another order by another BLAS: a "
    "few ulps (~1e-7 relative); 1e-6 absolute for outputs near zero, where a relative bound means "
    "nothing; a wrong layer config, a missing transpose or a shifted lookup is >= 1e-3 off",
)
#: ``python -m parity validate``: the same forward pass on a user's (or a large sampled) batch,
#: whose scores reach tens; the absolute floor is wider so sums of hundreds of terms near zero pass.
VALIDATE_TOLERANCE = Tolerance(
    atol=1e-5,
    rtol=1e-5,
    reason="one forward pass from identical weights: float32 matmuls summed in another order differ by a "
    "few ulps (~1e-7 relative, ~1e-6 absolute for scores of tens); a wrong layer config, a missing "
    "transpose or a shifted lookup is >= 1e-3 off",
)
#: The converter: the written index must answer exactly the identifiers TF answers.
IDENTICAL_IDS = Agreement(
    min_agreement=1.0,
    reason="the converter's own sampled queries: the same weights and inputs give the same top-K "
    "identifiers, in the same order",
)
#: ``parity validate``: every query's top-K must agree, ties within the score tolerance aside.
TOP_K_AGREEMENT = Agreement(
    min_agreement=1.0,
    reason="same weights and inputs give the same candidates; only scores tied within the score "
    "tolerance may come back in another order (see top_k_agreement)",
)
