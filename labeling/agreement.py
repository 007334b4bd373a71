"""Inter-annotator agreement. Plain Python (no Django, no numpy).

* ``krippendorff_alpha_nominal``: Krippendorff's alpha for nominal data, computed from the
  coincidence matrix (Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011).
  Missing values are simply absent from a unit; units with fewer than two values are not pairable
  and are ignored.
* ``consensus_agreement``: for each coder, the share of units where their value equals the
  majority value of the *other* coders on that unit (leave-one-out, so a coder never agrees with
  themselves; a unit whose other coders have no unique majority does not count).
* ``pair_units``: turns rankings into the units used by the dashboard: one unit per
  (task, pair of completion positions), valued ``'a'`` / ``'b'`` / ``'tie'``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from labeling.rankings import pair_outcome


@dataclass(frozen=True)
class Alpha:
    value: float | None  # None: undefined (no pairable values, or no variation at all)
    units: int  # pairable units (two values or more)
    values: int  # pairable values, n in Krippendorff's notation


def krippendorff_alpha_nominal(units: Iterable[Sequence[Hashable]]) -> Alpha:
    """Krippendorff's alpha (nominal metric) over ``units``: each unit is the list of values coders gave it.

    alpha = 1 - D_o / D_e with D_o = sum_{c!=k} o_ck / n and D_e = sum_{c!=k} n_c n_k / (n (n - 1)),
    where o_ck is the coincidence matrix, n_c its margins and n the number of pairable values.
    """
    coincidence: defaultdict[tuple[Hashable, Hashable], float] = defaultdict(float)
    pairable_units = 0
    for values in units:
        m = len(values)
        if m < 2:
            continue
        pairable_units += 1
        counts = Counter(values)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - 1) if c == k else n_c * n_k
                if pairs:
                    coincidence[(c, k)] += pairs / (m - 1)
    margins: defaultdict[Hashable, float] = defaultdict(float)
    for (c, _k), o in coincidence.items():
        margins[c] += o
    n = sum(margins.values())
    if n <= 1:
        return Alpha(value=None, units=pairable_units, values=round(n))
    observed = sum(o for (c, k), o in coincidence.items() if c != k)
    expected = sum(margins[c] * margins[k] for c in margins for k in margins if c != k)
    if expected == 0:
        # Every value is the same category: alpha is undefined (0/0), not perfect.
        return Alpha(value=None, units=pairable_units, values=round(n))
    return Alpha(value=1.0 - (n - 1) * observed / expected, units=pairable_units, values=round(n))


@dataclass(frozen=True)
class ConsensusScore:
    agree: int
    units: int

    @property
    def rate(self) -> float | None:
        return self.agree / self.units if self.units else None


def consensus_agreement(units: Iterable[Mapping[Hashable, Hashable]]) -> dict[Hashable, ConsensusScore]:
    """Per coder: how often their value equals the others' unique majority on a unit (see module doc)."""
    agree: Counter[Hashable] = Counter()
    total: Counter[Hashable] = Counter()
    for by_coder in units:
        if len(by_coder) < 2:
            continue
        counts = Counter(by_coder.values())
        for coder, value in by_coder.items():
            others = counts.copy()
            others[value] -= 1
            ranked = [(v, n) for v, n in others.most_common() if n > 0]
            if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
                continue  # no unique majority among the others
            total[coder] += 1
            if ranked[0][0] == value:
                agree[coder] += 1
    return {coder: ConsensusScore(agree=agree[coder], units=total[coder]) for coder in total}


def pair_units(judgments: Iterable[tuple[Hashable, Hashable, Sequence[Sequence[int]]]]) -> list[dict[Hashable, str]]:
    """(task, coder, ranking) triples -> one ``{coder: outcome}`` unit per (task, completion pair).

    A coder's latest triple for a task wins if there are several. Outcomes are 'a' (the lower
    position wins), 'b' (the higher wins) or 'tie'.
    """
    by_task: dict[Hashable, dict[Hashable, Sequence[Sequence[int]]]] = defaultdict(dict)
    for task, coder, ranking in judgments:
        if ranking:
            by_task[task][coder] = ranking
    units: list[dict[Hashable, str]] = []
    for rankings in by_task.values():
        if len(rankings) < 2:
            continue
        positions = sorted({p for ranking in rankings.values() for tier in ranking for p in tier})
        for a, b in combinations(positions, 2):
            unit = {}
            for coder, ranking in rankings.items():
                try:
                    unit[coder] = pair_outcome(ranking, a, b)
                except KeyError:
                    continue  # a malformed ranking that misses a position: no value
            units.append(unit)
    return units
