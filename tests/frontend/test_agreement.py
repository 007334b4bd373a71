"""Krippendorff's alpha (nominal) and leave-one-out consensus agreement, against worked examples."""

from __future__ import annotations

import pytest

from labeling.agreement import consensus_agreement, krippendorff_alpha_nominal, pair_units


def test_alpha_matches_krippendorffs_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 coders, 12 units,
    # values 1..5, missing data. Published result: alpha (nominal) = 0.743, over n = 40 pairable values.
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[c[u] for c in coders if c[u] is not None] for u in range(12)]
    alpha = krippendorff_alpha_nominal(units)
    assert round(alpha.value, 3) == 0.743
    assert alpha.values == 40 and alpha.units == 11  # unit 12 has one value: not pairable


def test_alpha_hand_computed_on_pair_outcomes():
    # Coincidences: o(a,a)=2, o(a,b)=o(b,a)=1, o(b,b)=2, o(tie,tie)=1, o(tie,a)=o(a,tie)=1.
    # Margins n_a=4, n_b=3, n_tie=2, n=9. alpha = 1 - (n-1) * 4 / (2 * (4*3 + 4*2 + 3*2)) = 1 - 32/52 = 5/13.
    units = [["a", "a"], ["a", "b"], ["b", "b"], ["tie", "tie", "a"]]
    assert krippendorff_alpha_nominal(units).value == pytest.approx(5 / 13)


def test_alpha_edge_cases():
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"], ["tie", "tie", "tie"]]).value == pytest.approx(1.0)
    # Systematic disagreement is below chance.
    assert krippendorff_alpha_nominal([["a", "b"], ["b", "a"], ["a", "b"]]).value < 0
    # No variation at all (everyone always says 'a'): undefined, not perfect.
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "a", "a"]]).value is None
    # Nothing pairable.
    empty = krippendorff_alpha_nominal([["a"], [], ["b"]])
    assert empty.value is None and empty.units == 0


def test_consensus_is_leave_one_out_and_needs_a_unique_majority():
    units = [
        {"u1": "a", "u2": "a", "u3": "b"},  # u1 vs {a, b}: no majority; u3 vs {a, a}: disagrees
        {"u1": "tie", "u2": "tie", "u3": "tie"},  # everyone agrees with the others
        {"u1": "a", "u2": "b"},  # two coders: each is compared with the other
        {"u1": "a"},  # alone: no comparison
    ]
    scores = consensus_agreement(units)
    assert (scores["u1"].agree, scores["u1"].units) == (1, 2)
    assert (scores["u2"].agree, scores["u2"].units) == (1, 2)
    assert (scores["u3"].agree, scores["u3"].units) == (1, 2)
    assert scores["u3"].rate == 0.5


def test_pair_units_from_rankings_with_ties():
    judgments = [
        ("t1", "u1", [[0], [1], [2]]),
        ("t1", "u2", [[1, 0], [2]]),
        ("t2", "u1", [[1], [0]]),  # only one coder on t2: no unit
    ]
    units = pair_units(judgments)
    assert units == [
        {"u1": "a", "u2": "tie"},  # pair (0, 1)
        {"u1": "a", "u2": "a"},  # pair (0, 2)
        {"u1": "a", "u2": "a"},  # pair (1, 2)
    ]
