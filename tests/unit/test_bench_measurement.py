"""A bench budget prints and checks one number: the target text and ``met`` cannot disagree."""

from __future__ import annotations

from deploy.bench import Measurement


def test_within_inclusive_and_strict_budgets() -> None:
    at = Measurement.within("noop", [0.3, 0.4, 0.5], seconds=0.4)
    assert (at.target, at.met, at.runs) == ("≤ 0.4 s", True, (0.3, 0.4, 0.5))
    strict = Measurement.within("status", [3.0, 3.0, 1.0], seconds=3, inclusive=False, note="reads only")
    assert (strict.target, strict.met, strict.note) == ("< 3 s", False, "reads only")
    over = Measurement.within("first deploy", [46.0], seconds=45)
    assert (over.target, over.met) == ("≤ 45 s", False)
