"""Fixed-point encoding: round to nearest, range checks, headroom refusal, negatives."""

from __future__ import annotations

import numpy as np
import pytest

from hecrypt.errors import EncodingError, PrecisionError
from hecrypt.ring import Z2_32, Z2_64, FixedPoint, Zq


@pytest.mark.parametrize("ring,f", [(Z2_64, 16), (Z2_64, 20), (Z2_64, 30), (Z2_32, 12), (Zq((1 << 61) - 1), 16),
                                    (Zq(501337), 8)], ids=str)
def test_round_trip_within_half_ulp(ring, f, rng):
    fp = FixedPoint(ring, f)
    bound = min(fp.max_abs * 0.99, 1e6)
    x = rng.uniform(-bound, bound, size=500)
    x[:3] = [-bound, bound, -0.5 / fp.scale]
    y = fp.decode(fp.encode(x))
    assert np.max(np.abs(y - x)) <= 0.5 / fp.scale + 1e-12 * np.abs(x).max()
    assert np.any(y < 0)


def test_round_to_nearest_not_toward_zero():
    fp = FixedPoint(Z2_64, 4)
    x = np.array([0.49 / 16, 0.51 / 16, -0.51 / 16, -2.96875 + 1 / 40])
    np.testing.assert_array_equal(fp.decode(fp.encode(x)) * 16, np.rint(x * 16))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_refused(bad):
    fp = FixedPoint(Z2_64)
    with pytest.raises(EncodingError):
        fp.encode([1.0, bad])


def test_range_limit_at_and_past():
    fp = FixedPoint(Z2_32, 12)
    lim = fp.max_abs  # 2^31 / 2^12 = 524288
    assert lim == 2.0**19
    fp.encode([lim - 1.0 / fp.scale])
    with pytest.raises(EncodingError, match="does not fit"):
        fp.encode([lim])
    with pytest.raises(EncodingError):
        fp.encode([-lim - 1])
    fp64 = FixedPoint(Z2_64, 16)
    with pytest.raises(EncodingError):
        fp64.encode(2.0**47)
    fp64.encode(2.0**46)


def test_precision_without_headroom_is_refused():
    with pytest.raises(PrecisionError, match="headroom"):
        FixedPoint(Zq(501337), 16)
    with pytest.raises(PrecisionError):
        FixedPoint(Z2_32, 16)
    with pytest.raises(PrecisionError):
        FixedPoint(Z2_64, 32)
    FixedPoint(Z2_64, 31)
    FixedPoint(Z2_32, 15)
    with pytest.raises(TypeError):
        FixedPoint(Z2_64, 16.0)
    with pytest.raises(PrecisionError):
        FixedPoint(Z2_64, -1)


def test_product_then_truncate(rng):
    fp = FixedPoint(Z2_64, 16)
    x, y = rng.uniform(-100, 100, 300), rng.uniform(-100, 100, 300)
    p = fp.decode(fp.truncate(Z2_64.mul(fp.encode(x), fp.encode(y))))
    # error: encoding errors (<= 2^-17 each, times |other| <= 100) plus the floor (< 2^-16)
    assert np.max(np.abs(p - x * y)) <= 2 * 100 * 2.0**-17 + 2.0**-16 + 1e-9
