"""How well ``neondoctor explain`` generalises: score its top answer on real error texts, per class.

For every text of the corpus (``bench/unseen_corpus.py``) the rules are run in-process, as ``explain`` runs
them, and the top match is judged against the text's labels:

- **layer**: the top match's layer is the labelled one;
- **fix**: the labelled fix regex (case-insensitive) is found in the top match's fix steps, hint or title;
- **no answer**: no match at all.

A ``not_db`` text (not a database error) is right when there is no confident match. Texts of the held-out
share (``tests/data/unseen/``) that overlap a rule example are contamination: they are counted and listed by
id, since a rule was then written from them after all.

    python bench/score_unseen.py                     # the held-out share, Markdown table
    python bench/score_unseen.py --share seen --show-misses
    python bench/score_unseen.py --share all --json
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unseen_corpus import CLASSES, SEEN, UNSEEN, read

from neondoctor.explain import explain_stream
from neondoctor.rules import RuleSet, load_for_explain, load_rules

CLASS_NAMES = {
    "1": "client families without rules",
    "2": "poolers beyond the PgBouncer basics",
    "3": "old clients vs SCRAM",
    "4": "URL mistakes seen as another layer",
    "5": "other renderings",
    "6": "errno-level wordings",
    "classic": "classic errors, new contexts",
    "not_db": "not a database error (no match expected)",
}


def is_confident(match: dict[str, Any]) -> bool:
    """Whether a match is a confident answer rather than a guess.

    Today every match is confident. When the engine marks guesses (issue 7: a weak-signal answer "marked as a
    guess"), a match with ``guess: true`` or a low ``confidence`` does not count as an answer for ``not_db``.
    """
    if match.get("guess"):
        return False
    confidence = match.get("confidence")
    if isinstance(confidence, str):
        return confidence.lower() not in {"low", "guess", "weak"}
    if isinstance(confidence, int | float):
        return confidence >= 0.5
    return True


def fix_text(match: dict[str, Any]) -> str:
    """Where the fix is looked for: the fix steps, the hint and the title of the top match."""
    return "\n".join([*match.get("fix", []), match.get("hint") or "", match.get("title") or ""])


def judge(record: dict[str, Any], matches: list[dict[str, Any]]) -> dict[str, Any]:
    top = matches[0] if matches else None
    verdict: dict[str, Any] = {
        "id": record["id"],
        "class": record["class"],
        "expected_layer": record["layer"],
        "rule": top["id"] if top else None,
        "layer": top["layer"] if top else None,
        "answered": top is not None,
    }
    if record["class"] == "not_db":
        right = not any(is_confident(m) for m in matches)
        verdict.update(layer_ok=right, fix_ok=right)
        return verdict
    verdict["layer_ok"] = top is not None and top["layer"] == record["layer"]
    verdict["fix_ok"] = top is not None and re.search(record["fix"], fix_text(top), re.IGNORECASE) is not None
    return verdict


def explain_matches(text: str, ruleset: RuleSet) -> list[dict[str, Any]]:
    return explain_stream(io.BytesIO(text.encode("utf-8", "surrogateescape")), ruleset).matches


def normalise(text: str) -> str:
    return " ".join(text.split())


def example_texts(ruleset: RuleSet) -> list[str]:
    texts = []
    for rule in ruleset:
        for example in [*rule.examples, *rule.not_examples]:
            text = normalise(example.get("text", ""))
            if text:
                texts.append(text)
    return texts


def contaminated(records: Iterable[dict[str, Any]], examples: list[str]) -> list[str]:
    """Ids of texts whose whitespace-normalised form contains, or is contained in, a rule example."""
    found = []
    for record in records:
        text = normalise(record["text"])
        if any(example in text or text in example for example in examples):
            found.append(record["id"])
    return found


def load_share(share: str) -> list[dict[str, Any]]:
    paths = {"unseen": [UNSEEN], "seen": [SEEN], "all": [SEEN, UNSEEN]}[share]
    records = []
    for path in paths:
        for record in read(path):
            record["share"] = "unseen" if path == UNSEEN else "seen"
            records.append(record)
    return records


def score(records: list[dict[str, Any]], ruleset: RuleSet) -> list[dict[str, Any]]:
    verdicts = []
    for record in records:
        verdict = judge(record, explain_matches(record["text"], ruleset))
        verdict["share"] = record["share"]
        verdicts.append(verdict)
    return verdicts


def summarise(verdicts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    groups = [(c, [v for v in verdicts if v["class"] == c]) for c in CLASSES]
    groups.append(("overall", [v for v in verdicts if v["class"] != "not_db"]))
    for name, group in groups:
        n = len(group)
        if not n:
            continue
        rows[name] = {
            "n": n,
            "layer": 100.0 * sum(v["layer_ok"] for v in group) / n,
            "fix": 100.0 * sum(v["fix_ok"] for v in group) / n,
            "no_answer": 100.0 * sum(not v["answered"] for v in group) / n,
        }
    return rows


def markdown(rows: dict[str, dict[str, Any]], share: str) -> str:
    lines = [
        f"Share: {share}",
        "",
        "| class | what | n | layer % | fix % | no answer % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        what = CLASS_NAMES.get(name, "all but not_db")
        label = f"**{name}**" if name == "overall" else name
        lines.append(
            f"| {label} | {what} | {row['n']} | {row['layer']:.1f} | {row['fix']:.1f} | {row['no_answer']:.1f} |"
        )
    lines.append("")
    lines.append('not_db: layer % and fix % both mean "no confident match", as they should.')
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", choices=("unseen", "seen", "all"), default="unseen")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--show-misses", action="store_true", help="list the texts the top answer gets wrong")
    parser.add_argument(
        "--i-am-not-writing-rules",
        action="store_true",
        help="allow --show-misses to list held-out (unseen) texts; never use it while writing rules",
    )
    parser.add_argument("--rules", action="append", default=[], metavar="DIR", help="extra rule folder (repeatable)")
    args = parser.parse_args(argv)

    ruleset = load_for_explain(args.rules)
    records = load_share(args.share)
    verdicts = score(records, ruleset)
    rows = summarise(verdicts)
    unseen = [r for r in records if r["share"] == "unseen"]
    leaked = contaminated(unseen, example_texts(load_rules(args.rules))) if unseen else []
    misses = [v for v in verdicts if not (v["layer_ok"] and v["fix_ok"])]
    shown = [v for v in misses if v["share"] == "seen" or args.i_am_not_writing_rules] if args.show_misses else []
    by_id = {r["id"]: r for r in records}

    if args.json:
        report: dict[str, Any] = {"share": args.share, "rules": len(ruleset), "classes": rows, "contaminated": leaked}
        if args.show_misses:
            report["misses"] = [{**v, "text": by_id[v["id"]]["text"]} for v in shown]
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0

    print(markdown(rows, args.share))
    print()
    print(
        f"Contaminated held-out texts (overlap a rule example): {len(leaked)}"
        + (f": {', '.join(leaked)}" if leaked else "")
    )
    if args.show_misses:
        hidden = len(misses) - len(shown)
        print()
        print(f"Misses ({len(shown)} shown" + (f", {hidden} held-out ones hidden" if hidden else "") + "):")
        for verdict in shown:
            record = by_id[verdict["id"]]
            got = f"{verdict['rule']} ({verdict['layer']})" if verdict["answered"] else "no match"
            wrong = (
                "no answer" if not verdict["answered"] else "wrong layer" if not verdict["layer_ok"] else "wrong fix"
            )
            print(
                f"- {verdict['id']} [{verdict['class']}] {wrong}: expected {record['layer']} /{record['fix']}/,"
                f" got {got}"
            )
            for line in record["text"].splitlines()[:6]:
                print(f"      {line[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
