"""What a protocol's delimiter breaking changes in honest texts: for every bundled pairwise protocol,
how many questions and answers of the bundled gold sets it alters (``protocols.break_delimiters``:
a line that would close an answer's block gets a space after its first character), and which.

Where nothing is altered, the safeguard cannot cost a judge any accuracy on that set: the judge
sees exactly the template's text. Where something is, ``--show`` prints the altered lines, and
docs/judges.md says what the accuracy with and without the breaking was on those pairs.

    .venv/bin/python bench/delimiting.py [--show]
"""

from __future__ import annotations

import argparse
import json

from llm_judge.judges import GOLD_SETS, load_gold
from llm_judge.protocols import break_delimiters, bundled, load_protocol


def altered(protocol: str, texts: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(pair id, the text's role, the first line that changed) for every text the breaking alters."""
    p = load_protocol(protocol)
    out = []
    for where, text in texts:
        broken = break_delimiters(p, text)
        if broken != text:
            line = next(a for a, b in zip(text.splitlines(), broken.splitlines()) if a != b)
            out.append((where.split("/")[0], where.split("/")[1], line.strip()[:80]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", action="store_true", help="print each altered line")
    args = ap.parse_args()
    sets = ["llmbar-natural", "llmbar-adversarial", "mtbench-human"]
    texts = {s: [(f"{it.id}/{role}", getattr(it, role)) for it in load_gold(s)
                 for role in ("input", "output_1", "output_2")] for s in sets}
    names = [n for n in bundled() if load_protocol(n).kind == "pairwise" and not load_protocol(n).builtin
             and not load_protocol(n).members]
    table = {}
    for name in names:
        table[name] = {s: altered(name, texts[s]) for s in sets}
        counts = ", ".join(f"{s}: {len(v)} of {len(texts[s])} texts ({len({x[0] for x in v})} pairs)"
                           for s, v in table[name].items())
        print(f"{name}: {counts}")
        if args.show:
            for s, rows in table[name].items():
                for pair, role, line in rows:
                    print(f"    {s} {pair} {role}: {line!r}")
    print(json.dumps({n: {s: len(v) for s, v in t.items()} for n, t in table.items()}))
    assert set(GOLD_SETS) >= set(sets)


if __name__ == "__main__":
    main()
