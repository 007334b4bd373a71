"""Rankings with ties: validation, pair derivation, agreement. Plain Python (no Django).

A ranking is a list of tiers, best first; a tier is a list of completion positions. ``[[1], [0]]``
says position 1 beats position 0; ``[[0, 1]]`` is a tie.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from labeling.options import LabelOptions

Ranking = list[list[int]]


class RankingError(ValueError):
    pass


@dataclass(frozen=True)
class Pair:
    """One ordered comparison derived from a ranking: ``winner`` vs ``loser``, or a tie (order by position)."""

    winner: int
    loser: int
    tie: bool


@dataclass(frozen=True)
class Verdict:
    ranking: Ranking
    all_bad: bool
    strength: int | None
    criteria: dict[str, dict[str, int]]
    rationale: str
    flags: list[str]


def validate_ranking(raw: Any, *, n_completions: int) -> Ranking:
    if not isinstance(raw, list) or not raw:
        raise RankingError("ranking must be a non-empty list of tiers, e.g. [[1], [0]]")
    seen: list[int] = []
    tiers: Ranking = []
    for i, tier in enumerate(raw):
        if isinstance(tier, int) and not isinstance(tier, bool):
            tier = [tier]
        if not isinstance(tier, list) or not tier:
            raise RankingError(f"ranking[{i}] must be a non-empty list of completion positions")
        for pos in tier:
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < n_completions:
                raise RankingError(f"ranking[{i}] has {pos!r}: positions are 0..{n_completions - 1}")
        tiers.append(sorted(tier))
        seen.extend(tier)
    if sorted(seen) != list(range(n_completions)):
        raise RankingError(f"ranking must name each of the {n_completions} completions exactly once")
    return tiers


def is_full_tie(ranking: Ranking) -> bool:
    return len(ranking) == 1


def validate_verdict(
    *,
    options: LabelOptions,
    n_completions: int,
    ranking: Any,
    all_bad: bool,
    strength: Any,
    criteria: Any,
    rationale: str,
    flags: Any,
) -> Verdict:
    """Check a submitted verdict against the project's label options; raise RankingError naming the field."""
    if ranking is None and all_bad:
        ranking = [list(range(n_completions))]
    tiers = validate_ranking(ranking, n_completions=n_completions)
    # "Both bad" is an outcome of its own: it may rank the bad completions equal even where ties are off.
    if not options.allow_tie and not all_bad and any(len(t) > 1 for t in tiers):
        raise RankingError("ties are not allowed in this project")
    if all_bad and not options.allow_both_bad:
        raise RankingError("'both bad' is not allowed in this project")
    if options.has_strength and not is_full_tie(tiers):
        assert options.strength_min is not None and options.strength_max is not None
        if strength is None:
            raise RankingError(f"strength is required ({options.strength_min}..{options.strength_max})")
        if isinstance(strength, bool) or not isinstance(strength, int):
            raise RankingError("strength must be an integer")
        if not options.strength_min <= strength <= options.strength_max:
            raise RankingError(f"strength must be within {options.strength_min}..{options.strength_max}")
    elif strength is not None and not options.has_strength:
        raise RankingError("this project has no strength scale")
    elif is_full_tie(tiers):
        strength = None
    scores: dict[str, dict[str, int]] = {}
    if criteria in (None, ""):
        criteria = {}
    if not isinstance(criteria, dict):
        raise RankingError("criteria must be an object {criterion: {position: score}}")
    by_name = {c.name: c for c in options.criteria}
    for name, per_completion in criteria.items():
        crit = by_name.get(name)
        if crit is None:
            raise RankingError(f"unknown criterion {name!r}")
        if not isinstance(per_completion, dict):
            raise RankingError(f"criteria.{name} must map completion position to score")
        scores[name] = {}
        for pos_key, score in per_completion.items():
            try:
                pos = int(pos_key)
            except (TypeError, ValueError):
                raise RankingError(f"criteria.{name}: {pos_key!r} is not a completion position") from None
            if not 0 <= pos < n_completions:
                raise RankingError(f"criteria.{name}: position {pos} is out of range")
            if isinstance(score, bool) or not isinstance(score, int) or not crit.min <= score <= crit.max:
                raise RankingError(f"criteria.{name}[{pos}] must be an integer within {crit.min}..{crit.max}")
            scores[name][str(pos)] = score
    if options.criteria_required:
        for crit in options.criteria:
            given = scores.get(crit.name, {})
            if len(given) != n_completions:
                raise RankingError(f"criteria.{crit.name} needs a score for every completion")
    rationale = (rationale or "").strip()
    if options.rationale_required and not rationale:
        raise RankingError("a rationale is required in this project")
    if len(rationale) > 20000:
        raise RankingError("rationale is longer than 20,000 characters")
    if flags in (None, ""):
        flags = []
    if not isinstance(flags, list) or any(f not in options.flags for f in flags):
        raise RankingError(f"flags must be a subset of {list(options.flags)}")
    return Verdict(
        ranking=tiers,
        all_bad=bool(all_bad),
        strength=strength,
        criteria=scores,
        rationale=rationale,
        flags=sorted(set(flags)),
    )


def ranking_pairs(ranking: Sequence[Sequence[int]]) -> list[Pair]:
    """All C(K,2) pairs of a ranking. Ties are kept as ties (ordered by position)."""
    tier_of = {pos: rank for rank, tier in enumerate(ranking) for pos in tier}
    pairs = []
    for a, b in combinations(sorted(tier_of), 2):
        if tier_of[a] == tier_of[b]:
            pairs.append(Pair(winner=a, loser=b, tie=True))
        elif tier_of[a] < tier_of[b]:
            pairs.append(Pair(winner=a, loser=b, tie=False))
        else:
            pairs.append(Pair(winner=b, loser=a, tie=False))
    return pairs


def pair_outcome(ranking: Sequence[Sequence[int]], a: int, b: int) -> str:
    """Outcome of positions a<b in a ranking: 'a' (a wins), 'b', or 'tie'."""
    tier_of = {pos: rank for rank, tier in enumerate(ranking) for pos in tier}
    if tier_of[a] == tier_of[b]:
        return "tie"
    return "a" if tier_of[a] < tier_of[b] else "b"


def task_agreement(rankings: Iterable[Sequence[Sequence[int]]]) -> float | None:
    """Mean over pairs of the share of judgments that agree with the majority outcome.

    1.0 is unanimous; None when fewer than two judgments exist (agreement is unknown).
    """
    rankings = list(rankings)
    if len(rankings) < 2:
        return None
    positions = sorted(p for tier in rankings[0] for p in tier)
    shares = []
    for a, b in combinations(positions, 2):
        counts = Counter(pair_outcome(r, a, b) for r in rankings)
        shares.append(counts.most_common(1)[0][1] / len(rankings))
    return sum(shares) / len(shares) if shares else None


def majority_ranking_top(rankings: Iterable[Sequence[Sequence[int]]]) -> Counter[tuple[int, ...]]:
    """How often each top tier was chosen (used for consensus and gold accuracy)."""
    return Counter(tuple(sorted(r[0])) for r in rankings)


def matches_gold(ranking: Sequence[Sequence[int]], gold: Sequence[Sequence[int]]) -> bool:
    """A judgment is correct on a gold task when every pair outcome matches the gold ranking."""
    return all(
        pair_outcome(ranking, p.winner, p.loser) == pair_outcome(gold, p.winner, p.loser) for p in ranking_pairs(gold)
    )
