"""Synthetic pairwise task files: a ~200-character prompt and two ~600-character markdown completions.

Every line differs (the line number and a random mix of fragments go into the text), so every task
has its own content hash. Deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LANGS = ["python", "javascript", "go", "rust", "sql", "bash"]
TOPICS = [
    "reverse a linked list",
    "parse a CSV file",
    "debounce a function",
    "merge two sorted arrays",
    "read a file line by line",
    "retry an HTTP request",
    "validate an email address",
    "flatten a nested list",
    "count word frequencies",
    "paginate a query",
    "hash a password",
    "compute a moving average",
    "deduplicate records",
    "stream a large JSON file",
    "format a date in UTC",
    "memoize a recursive function",
]
ASKS = [
    "Can you explain how to {topic} in {lang}? I keep running into edge cases with empty input and large data.",
    "What is the idiomatic way to {topic} using {lang}? Please show a short example and mention the complexity.",
    "I need to {topic} in {lang} for a production service. What pitfalls should I watch for, and why?",
    "Write a small {lang} snippet that shows how to {topic}, and tell me how to test it properly.",
]
SENTENCES = [
    "The key idea is to keep the loop simple and to handle the empty case first.",
    "This runs in linear time and uses constant extra memory, which matters for large inputs.",
    "Prefer the standard library here; it is well tested and easier for reviewers to read.",
    "Be careful with mutation: copying the input avoids surprising the caller.",
    "If the data does not fit in memory, process it in chunks and stream the results.",
    "Add a unit test for the boundary conditions, including a single element and duplicates.",
    "Logging the intermediate state helps when the behaviour differs between environments.",
    "A generator keeps memory flat because it yields one item at a time.",
    "Type hints make the contract explicit and let a checker catch mistakes early.",
    "For concurrency, guard shared state with a lock or avoid sharing it altogether.",
    "Measure before optimising; the bottleneck is often I/O rather than computation.",
    "Return early on invalid input so the main path stays readable.",
]
BULLETS = [
    "**Edge cases**: empty input, `None`, and very long values.",
    "**Complexity**: `O(n)` time, `O(1)` extra space.",
    "**Testing**: use property-based tests for the invariants.",
    "**Naming**: choose names that say what the value *means*.",
    "**Errors**: raise a specific exception with a helpful message.",
    "**Performance**: avoid quadratic string concatenation in loops.",
]
CODE = {
    "python": (
        "def solve(items):\n    out = []\n    for i, x in enumerate(items):\n        if x is None:\n"
        "            continue\n        out.append((i, x * {k}))\n    return out\n"
    ),
    "javascript": "function solve(items) {\n  return items\n    .filter((x) => x != null)\n"
    "    .map((x, i) => [i, x * {k}]);\n}\n",
    "go": (
        "func solve(items []int) [][2]int {\n\tout := make([][2]int, 0, len(items))\n"
        "\tfor i, x := range items {\n\t\tout = append(out, [2]int{i, x * {k}})\n\t}\n\treturn out\n}\n"
    ),
    "rust": "fn solve(items: &[i64]) -> Vec<(usize, i64)> {\n"
    "    items.iter().enumerate().map(|(i, x)| (i, x * {k})).collect()\n}\n",
    "sql": "SELECT id, value * {k} AS scaled\nFROM items\nWHERE value IS NOT NULL\nORDER BY id\nLIMIT 100;\n",
    "bash": 'while IFS= read -r line; do\n  [ -z "$line" ] && continue\n'
    '  echo "$(( ${#line} * {k} )) $line"\ndone < input.txt\n',
}


def _pad(rng: random.Random, text: str, target: int) -> str:
    while len(text) < target:
        text += " " + rng.choice(SENTENCES)
    return text


def _completion_template(rng: random.Random, lang: str, topic: str, variant: str) -> str:
    head = f"### {variant}: how to {topic} (#@I@)\n\n"
    intro = _pad(rng, rng.choice(SENTENCES), 160)
    bullets = "\n".join(f"- {b}" for b in rng.sample(BULLETS, 3))
    body = f"{head}{intro}\n\n```{lang}\n{CODE[lang].replace('{k}', '@K@')}```\n\n{bullets}\n\n"
    return _pad(rng, body, 600)[:640]


class Generator:
    """Pre-builds a few hundred text templates, then fills in the line number and a random factor per line."""

    def __init__(self, seed: int = 1, variants: int = 64) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.prompts: dict[tuple[str, str], list[str]] = {}
        self.completions: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for lang in LANGS:
            for topic in TOPICS:
                self.prompts[(lang, topic)] = [
                    _pad(rng, "[@I@] " + ask.format(topic=topic, lang=lang), 200) for ask in ASKS
                ]
                self.completions[(lang, topic)] = [
                    (
                        _completion_template(rng, lang, topic, "Answer A"),
                        _completion_template(rng, lang, topic, "Answer B"),
                    )
                    for _ in range(variants // 8)
                ]
        self.keys = list(self.completions)

    def line(self, i: int, *, prelabelled: bool) -> str:
        rng = self.rng
        key = self.keys[rng.randrange(len(self.keys))]
        a, b = self.completions[key][rng.randrange(len(self.completions[key]))]
        si = str(i)
        prompt = self.prompts[key][rng.randrange(len(ASKS))].replace("@I@", si)
        a = a.replace("@I@", si).replace("@K@", str(rng.randrange(2, 1000)))
        b = b.replace("@I@", si).replace("@K@", str(rng.randrange(2, 1000)))
        row: dict[str, object] = {"id": f"bench-{i}", "prompt": prompt}
        if prelabelled:
            row["chosen"] = {"text": a, "model": "model-a"}
            row["rejected"] = {"text": b, "model": "model-b"}
        else:
            row["completions"] = [{"text": a, "model": "model-a"}, {"text": b, "model": "model-b"}]
        return json.dumps(row)


def write_jsonl(path: Path, n: int, *, prelabelled: bool = False, seed: int = 1) -> int:
    """Write ``n`` task lines to ``path``; return the file size in bytes."""
    gen = Generator(seed)
    with path.open("w", encoding="utf-8") as fh:
        buf: list[str] = []
        for i in range(n):
            buf.append(gen.line(i, prelabelled=prelabelled))
            if len(buf) == 10_000:
                fh.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            fh.write("\n".join(buf) + "\n")
    return path.stat().st_size
