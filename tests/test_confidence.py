import math

import pytest

from dppo_robot.confidence import proportion, wilson_interval


def test_wilson_hand_values():
    # 16/20 (the paper's hardware result): p = 0.8, z = 1.96
    z = 1.959963984540054
    n, p = 20, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = wilson_interval(16, 20)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert (round(lo, 3), round(hi, 3)) == (0.584, 0.919)
    # 0/20 and 20/20 stay inside [0, 1] and are not degenerate
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] == pytest.approx(0.161, abs=1e-3)
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] == pytest.approx(0.839, abs=1e-3)


def test_twenty_trials_are_about_plus_minus_point_two():
    lo, hi = wilson_interval(10, 20)
    assert 0.38 < hi - lo < 0.44


def test_bad_counts():
    with pytest.raises(ValueError, match="need 0 <= successes"):
        wilson_interval(21, 20)
    assert math.isnan(proportion(0, 0).rate)
    assert str(proportion(16, 20)) == "16/20 = 0.80 [0.58, 0.92]"
