"""The corpus of real error texts behind ``bench/score_unseen.py``: its record format, split rule and merge tool.

Each text goes to one share by a hash of the text alone, so adding texts later never moves an old one:
``int(sha256(("neondoctor-unseen-2026:" + text).encode()).hexdigest(), 16) % 3 == 0`` puts it in the
held-out test share ``tests/data/unseen/texts.jsonl``; every other text is in the train share
``tests/data/seen/texts.jsonl``, which rule writers may read.

    python bench/unseen_corpus.py add STAGED.jsonl     # merge new labelled records into both shares
    python bench/unseen_corpus.py stats                # per-class counts of both shares (no texts)
    python bench/unseen_corpus.py drop ID [ID ...]     # remove records (e.g. a rule example overlaps them)

``add`` refuses a text that overlaps a rule example or the shared error catalogue (whitespace-normalised: the
text lies inside one, or quotes a long one whole): those are the texts rules are written from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UNSEEN = ROOT / "tests" / "data" / "unseen" / "texts.jsonl"
SEEN = ROOT / "tests" / "data" / "seen" / "texts.jsonl"
SALT = "neondoctor-unseen-2026:"
CLASSES = ("1", "2", "3", "4", "5", "6", "classic", "not_db")
LAYERS = ("url", "dns", "tcp", "tls", "auth", "database", "slots", "tables", "server", "pooler", "client", "none")
FIELDS = ("id", "class", "family", "text", "layer", "fix", "source")
CATALOGUE = Path("/work/shared/reference/error-catalogue.md")


def text_hash(text: str) -> int:
    return int(hashlib.sha256((SALT + text).encode()).hexdigest(), 16)


def is_unseen(text: str) -> bool:
    """The split rule: a third of the texts, chosen by their hash, are held out."""
    return text_hash(text) % 3 == 0


def share_path(text: str) -> Path:
    return UNSEEN if is_unseen(text) else SEEN


def record_id(record: dict[str, Any]) -> str:
    digest = hashlib.sha256(record["text"].encode()).hexdigest()[:10]
    return f"c{record['class']}-{record['family']}-{digest}"


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: (CLASSES.index(r["class"]), r["family"], r["id"]))
    with path.open("w", encoding="utf-8") as handle:
        for record in ordered:
            handle.write(json.dumps({key: record[key] for key in FIELDS}, ensure_ascii=False) + "\n")


def problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with one record (empty when it is well-formed)."""
    found = [f"missing {key}" for key in FIELDS if not isinstance(record.get(key), str)]
    if found:
        return found
    if record["class"] not in CLASSES:
        found.append(f"class {record['class']!r}")
    if record["layer"] not in LAYERS:
        found.append(f"layer {record['layer']!r}")
    if (record["layer"] == "none") != (record["class"] == "not_db"):
        found.append("layer none is for not_db texts only")
    try:
        re.compile(record["fix"], re.IGNORECASE)
    except re.error as exc:
        found.append(f"fix does not compile: {exc}")
    if record["class"] != "not_db" and not record["fix"]:
        found.append("empty fix")
    if not record["text"].strip() or not record["source"].strip():
        found.append("empty text or source")
    return found


def normalise(text: str) -> str:
    return " ".join(text.split())


def reference_texts() -> list[str]:
    """What rules are written from: every rule example and not_example, and the catalogue's quoted texts."""
    sys.path.insert(0, str(ROOT))
    from neondoctor.rules import load_rules

    texts = [normalise(e["text"]) for rule in load_rules() for e in [*rule.examples, *rule.not_examples]]
    if CATALOGUE.exists():
        catalogue = CATALOGUE.read_text(encoding="utf-8")
        spans = re.findall(r"`([^`\n]{30,})`", catalogue)
        spans += [line for block in re.findall(r"```[^\n]*\n(.*?)```", catalogue, re.S) for line in block.splitlines()]
        texts += [normalise(span) for span in spans if len(normalise(span)) >= 30]
    return [text for text in texts if text]


def overlaps(text: str, references: list[str], quote: int = 100) -> bool:
    """The text was taken from a reference: it lies inside one, is nearly all of one, or quotes a long one whole.

    A short reference inside a longer paste (``fe_sendauth: no password supplied`` in a whole psql error) is
    not an overlap here: every real paste of that error contains it. ``score_unseen.py`` still lists such texts.
    """
    text = normalise(text)
    return any(
        text in ref or (ref in text and (len(ref) >= quote or len(ref) >= 0.8 * len(text))) for ref in references
    )


def add(staged: Path) -> tuple[int, int]:
    """Merge labelled records (id optional) into the shares; a text already present is skipped."""
    shares = {UNSEEN: read(UNSEEN), SEEN: read(SEEN)}
    known = {r["text"] for records in shares.values() for r in records}
    references = reference_texts()
    added = skipped = 0
    for record in read(staged):
        if record["text"] in known:
            skipped += 1
            continue
        if overlaps(record["text"], references):
            print(f"refused (overlaps a rule example or the catalogue): {record['source']}", file=sys.stderr)
            skipped += 1
            continue
        record["id"] = record.get("id") or record_id(record)
        bad = problems(record)
        if bad:
            raise SystemExit(f"{staged}: {record['id']}: {'; '.join(bad)}")
        shares[share_path(record["text"])].append(record)
        known.add(record["text"])
        added += 1
    for path, records in shares.items():
        write(path, records)
    return added, skipped


def stats() -> str:
    rows = []
    for name, path in (("unseen", UNSEEN), ("seen", SEEN)):
        records = read(path)
        counts = Counter(r["class"] for r in records)
        families = len({r["family"] for r in records})
        rows.append(
            f"{name}: {len(records)} texts, {families} families; " + ", ".join(f"{c}={counts[c]}" for c in CLASSES)
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_cmd = sub.add_parser("add", help="merge staged records into both shares")
    add_cmd.add_argument("staged", type=Path)
    sub.add_parser("stats", help="counts per class (no texts)")
    drop_cmd = sub.add_parser("drop", help="remove records by id")
    drop_cmd.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "add":
        added, skipped = add(args.staged)
        print(f"added {added}, skipped {skipped} (already present or refused)")
    if args.command == "drop":
        for path in (UNSEEN, SEEN):
            records = read(path)
            kept = [r for r in records if r["id"] not in args.ids]
            if len(kept) != len(records):
                write(path, kept)
        print(f"dropped what matched of {len(args.ids)} ids")
    print(stats())
    return 0


if __name__ == "__main__":
    sys.exit(main())
