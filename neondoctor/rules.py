"""The rule engine: load, validate and match the YAML knowledge base (format: rules/README.md).

Start-up cost matters because ``neondoctor explain`` should feel instant: the parsed rules are kept
in a JSON cache next to the user's other caches (keyed on every rule file's path, size and mtime), so
a warm run imports neither yaml nor the regex parser, and a rule's regexes are compiled only when a
candidate line contains one of the literal strings every match of that regex must contain.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import neondoctor

LAYERS = ("url", "dns", "tcp", "tls", "auth", "database", "slots", "tables", "server", "pooler", "client")
BLAMES = ("user", "network", "provider", "server", "client")
LIVE_LAYERS = frozenset({"dns", "tcp", "tls", "auth", "database", "slots", "tables"})
RULE_KEYS = frozenset(
    {"id", "layer", "blame", "title", "hint", "priority", "match", "cause", "fix", "docs", "examples", "not_examples"}
)
MATCH_KEYS = frozenset({"any", "sqlstate", "unless"})
EXAMPLE_KEYS = frozenset({"text", "source"})
DEFAULT_PRIORITY = 50
MIN_LITERAL = 3
BUILTIN = "builtin"
ENV_RULES = "NEONDOCTOR_RULES"
CACHE_FORMAT = 3
FIX_WHEN = ("neon", "not-neon")
"""A fix step may be tagged ``{when: neon, step: ...}``: `check` offers it only where it fits the host."""

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SQLSTATE_CODE = re.compile(r"^[0-9A-Z]{5}$")


class RulesError(Exception):
    """A rule folder that cannot be used at all (missing, not a directory)."""


class Problem(NamedTuple):
    file: str
    rule_id: str | None
    message: str
    fatal: bool = False
    """A fatal problem keeps the rule (or the whole file) out of the rule set."""

    def __str__(self) -> str:
        where = f"{self.file}: {self.rule_id}" if self.rule_id else self.file
        return f"{where}: {self.message}"


class Rule:
    """One rule. Regexes are compiled lazily, once, case-insensitively."""

    __slots__ = (
        "_any",
        "_unless",
        "any",
        "blame",
        "cause",
        "docs",
        "examples",
        "file",
        "fix",
        "fix_when",
        "hint",
        "id",
        "layer",
        "literals",
        "not_examples",
        "origin",
        "priority",
        "sqlstate",
        "title",
        "unless",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        self.id: str = data["id"]
        self.layer: str = data["layer"]
        self.blame: str = data["blame"]
        self.title: str = data["title"]
        self.hint: str | None = data.get("hint")
        self.priority: int = data["priority"]
        self.any: list[str] = data["any"]
        self.unless: list[str] = data["unless"]
        self.sqlstate: list[str] = data["sqlstate"]
        self.cause: str = data["cause"]
        self.fix: list[str] = data["fix"]
        self.fix_when: list[str | None] = data.get("fix_when") or [None] * len(self.fix)
        self.docs: list[str] = data["docs"]
        self.examples: list[dict[str, str]] = data.get("examples", [])
        self.not_examples: list[dict[str, str]] = data.get("not_examples", [])
        self.origin: str = data["origin"]
        self.file: str = data["file"]
        self.literals: list[list[str] | None] = data["literals"]
        self._any: list[re.Pattern[str] | None] = [None] * len(self.any)
        self._unless: list[re.Pattern[str]] | None = None

    def to_cache(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__ if not name.startswith("_")}
        del data["examples"], data["not_examples"]
        return data

    def to_dict(self) -> dict[str, Any]:
        """The rule as written in YAML, plus where it came from."""
        match: dict[str, Any] = {"any": self.any}
        if self.sqlstate:
            match["sqlstate"] = self.sqlstate
        if self.unless:
            match["unless"] = self.unless
        data: dict[str, Any] = {
            "id": self.id,
            "layer": self.layer,
            "blame": self.blame,
            "title": self.title,
            **({"hint": self.hint} if self.hint else {}),
            "priority": self.priority,
            "match": match,
            "cause": self.cause,
            "fix": self.fix,
            **({"fix_when": self.fix_when} if any(self.fix_when) else {}),
            "docs": self.docs,
            "examples": self.examples,
        }
        if self.not_examples:
            data["not_examples"] = self.not_examples
        data["origin"] = self.origin
        data["file"] = self.file
        return data

    def pattern(self, index: int) -> re.Pattern[str]:
        compiled = self._any[index]
        if compiled is None:
            compiled = self._any[index] = re.compile(self.any[index], re.IGNORECASE | re.MULTILINE)
        return compiled

    def vetoed(self, text: str) -> bool:
        if not self.unless:
            return False
        if self._unless is None:
            self._unless = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in self.unless]
        return any(p.search(text) for p in self._unless)

    def search(self, text: str, lower: str, indices: Iterable[int] | None = None) -> re.Match[str] | None:
        """The longest match of any of the rule's regexes in ``text`` (``lower`` is its lower-cased twin);
        ``indices``: only these regexes, already known to have their literal in the text."""
        best: re.Match[str] | None = None
        exotic = not lower.isascii()
        for index in range(len(self.literals)) if indices is None else sorted(indices):
            literals = self.literals[index]
            if indices is None and literals is not None and not exotic and not any(lit in lower for lit in literals):
                continue
            found = self.pattern(index).search(text)
            if found is not None and (best is None or len(found.group(0)) > len(best.group(0))):
                best = found
        return best


class RuleSet:
    """The effective rules (built-ins overridden by user rules) and the problems found while loading."""

    def __init__(self, rules: list[Rule], problems: list[Problem], dirs: list[tuple[str, Path]]) -> None:
        self.rules = rules
        self.problems = problems
        self.dirs = dirs
        self.by_id = {rule.id: rule for rule in rules}
        self._literals: list[str] | None = None

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    def literals(self) -> list[str] | None:
        """Every literal some rule needs, lower-cased; None when a regex has none (then every line is a candidate)."""
        if self._literals is None:
            found: set[str] = set()
            for rule in self.rules:
                for literals in rule.literals:
                    if literals is None:
                        return None
                    found.update(literals)
            self._literals = sorted(found)
        return self._literals

    def explain(self, text: str) -> list[dict[str, Any]]:
        """Rule matches for one error text, best first, in the ``explain --json`` shape."""
        from neondoctor.explain import explain_text

        return explain_text(text, self).matches


# --------------------------------------------------------------------------- finding the rule files


def builtin_dir() -> Path:
    return _shipped_dir()


def engine_tables_file() -> Path:
    """rules/engine.json: the tables the explain engine reads (always the shipped one)."""
    return _shipped_dir() / "engine.json"


def _shipped_dir() -> Path:
    package = Path(neondoctor.__file__).parent
    shipped = package / "_rules"
    return shipped if shipped.is_dir() else package.parent / "rules"


def rule_dirs(user_dirs: Iterable[str | os.PathLike[str]] = (), *, env: dict[str, str] | None = None) -> list[
    tuple[str, Path]
]:
    """Rule folders in override order: built-ins, then ``NEONDOCTOR_RULES``, then ``--rules``."""
    env = os.environ if env is None else env
    dirs: list[tuple[str, Path]] = [(BUILTIN, builtin_dir())]
    from_env = [(f"{ENV_RULES}", entry) for entry in env.get(ENV_RULES, "").split(os.pathsep) if entry.strip()]
    given = [("--rules", os.fspath(entry)) for entry in user_dirs]
    for label, entry in [*from_env, *given]:
        path = Path(entry).expanduser()
        if not path.is_dir():
            raise RulesError(f"{label}: {entry} is not a directory")
        dirs.append((str(path), path))
    return dirs


def _files(dirs: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for origin, folder in dirs:
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith((".yaml", ".yml")))
        except OSError:
            continue
        found.extend((origin, folder / name) for name in names)
    return found


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- loading


def load_rules(user_dirs: Iterable[str | os.PathLike[str]] = (), *, env: dict[str, str] | None = None) -> RuleSet:
    """Load and validate every rule from YAML, examples included (``env`` replaces os.environ, for tests)."""
    dirs = rule_dirs(user_dirs, env=env)
    return _load(dirs, _files(dirs))


def load_for_explain(user_dirs: Iterable[str | os.PathLike[str]] = ()) -> RuleSet:
    """Like :func:`load_rules`, through the JSON cache when it is fresh."""
    dirs = rule_dirs(user_dirs)
    files = _files(dirs)
    cache = _cache_file(dirs)
    key = _cache_key(files) if cache else None
    if cache is not None and key is not None:
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
    ruleset = _load(dirs, files)
    if cache is not None and key is not None:
        _write_cache(cache, key, ruleset)
    return ruleset


def _load(dirs: list[tuple[str, Path]], files: list[tuple[str, Path]]) -> RuleSet:
    problems: list[Problem] = []
    effective: dict[str, Rule] = {}
    seen: dict[str, dict[str, str]] = {}
    for origin, path in files:
        shown = display_path(path)
        raw_rules, file_problems = _read_yaml(path, shown)
        problems.extend(file_problems)
        ids = seen.setdefault(origin, {})
        for index, raw in enumerate(raw_rules):
            rule, rule_problems = parse_rule(raw, shown, origin, index)
            problems.extend(rule_problems)
            if rule is None:
                continue
            if rule.id in ids:
                problems.append(
                    Problem(shown, rule.id, f"duplicate id (also in {ids[rule.id]}); the first one is used", True)
                )
                continue
            ids[rule.id] = shown
            effective[rule.id] = rule
    return RuleSet(list(effective.values()), problems, dirs)


def _read_yaml(path: Path, shown: str) -> tuple[list[Any], list[Problem]]:
    import yaml

    base = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    duplicates: list[str] = []

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, *args: Any, **kwargs: Any) -> Any:
            keys = [key.value for key, _ in node.value if key.tag == "tag:yaml.org,2002:str"]
            for key in {k for k in keys if keys.count(k) > 1}:
                duplicates.append(f"duplicate key {key!r} in the mapping at line {node.start_mark.line + 1}")
            return super().construct_mapping(node, *args, **kwargs)

    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=StrictLoader)
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(shown, None, f"cannot read: {exc}", True)]
    except yaml.YAMLError as exc:
        return [], [Problem(shown, None, f"not valid YAML: {' '.join(str(exc).split())}", True)]
    problems = [Problem(shown, None, message) for message in duplicates]
    if data is None:
        return [], problems
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return [], [*problems, Problem(shown, None, "expected a top-level 'rules:' list", True)]
    problems.extend(Problem(shown, None, f"unknown top-level key {key!r}") for key in data if key != "rules")
    return data["rules"], problems


def parse_rule(raw: Any, file: str, origin: str, index: int = 0) -> tuple[Rule | None, list[Problem]]:
    """Validate one raw rule; returns None with a fatal problem when it cannot be used."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return None, [Problem(file, f"rule #{index + 1}", "is not a mapping", True)]
    rule_id = raw.get("id")
    label = rule_id if isinstance(rule_id, str) and rule_id else f"rule #{index + 1}"

    def problem(message: str, fatal: bool = False) -> None:
        problems.append(Problem(file, label, message, fatal))

    for key in sorted(set(raw) - RULE_KEYS, key=str):
        problem(f"unknown key {key!r}")
    if not isinstance(rule_id, str) or not rule_id:
        problem("missing 'id'", True)
    elif not _ID.match(rule_id):
        problem("id must be kebab-case (lower-case letters, digits and single hyphens)")
    for field in ("layer", "blame", "title", "cause"):
        if not isinstance(raw.get(field), str) or not raw[field].strip():
            problem(f"missing '{field}'", field in ("title", "cause"))
    if isinstance(raw.get("layer"), str) and raw["layer"] not in LAYERS:
        problem(f"unknown layer {raw['layer']!r} (one of {', '.join(LAYERS)})")
    if isinstance(raw.get("blame"), str) and raw["blame"] not in BLAMES:
        problem(f"unknown blame {raw['blame']!r} (one of {', '.join(BLAMES)})")
    priority = raw.get("priority", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        problem(f"priority must be an integer from 0 to 100, not {priority!r}")
        priority = DEFAULT_PRIORITY
    fix_steps, fix_when = _parse_fix(raw.get("fix"), problem)
    docs = raw.get("docs", [])
    if docs is None or not isinstance(docs, list) or not all(isinstance(link, str) for link in docs):
        problem("'docs' must be a list of links")
        docs = []
    any_patterns, unless, sqlstates, literals = _parse_match(raw.get("match"), problem)
    hint = _parse_hint(raw.get("hint"), any_patterns, problem)
    examples = _parse_examples(raw, "examples", problem)
    not_examples = _parse_examples(raw, "not_examples", problem)
    if "examples" not in raw or (isinstance(raw.get("examples"), list) and not raw["examples"]):
        problem("no examples: add at least one real error text with its source")
    if any(p.fatal for p in problems):
        return None, problems
    rule = Rule(
        {
            "id": rule_id,
            "layer": raw["layer"] if isinstance(raw.get("layer"), str) else "",
            "blame": raw["blame"] if isinstance(raw.get("blame"), str) else "",
            "title": raw["title"].strip(),
            "hint": hint,
            "priority": priority,
            "any": any_patterns,
            "unless": unless,
            "sqlstate": sqlstates,
            "cause": " ".join(raw["cause"].split()),
            "fix": fix_steps,
            "fix_when": fix_when,
            "docs": docs,
            "examples": examples,
            "not_examples": not_examples,
            "origin": origin,
            "file": file,
            "literals": literals,
        }
    )
    return rule, problems


def _parse_hint(hint: Any, patterns: list[str], problem: Any) -> str | None:
    if hint is None:
        return None
    if not _valid_hint(hint, patterns):
        problem("'hint' must be one line whose {placeholders} are named groups of match.any")
        return None
    return " ".join(hint.split())


def _parse_fix(fix: Any, problem: Any) -> tuple[list[str], list[str | None]]:
    """Fix steps as text, and for each the host it fits (``neon``, ``not-neon``) or None for any host."""
    steps: list[str] = []
    when: list[str | None] = []
    if not isinstance(fix, list) or not fix:
        problem("'fix' must be a non-empty list of steps", True)
        return steps, when
    for step in fix:
        tag = None
        if isinstance(step, dict):
            if set(step) != {"when", "step"} or step["when"] not in FIX_WHEN:
                problem(f"a tagged fix step is {{when: {' | '.join(FIX_WHEN)}, step: text}}, not {step!r}", True)
                continue
            tag, step = step["when"], step["step"]
        if not isinstance(step, str) or not step.strip():
            problem("'fix' must be a non-empty list of steps", True)
            continue
        steps.append(" ".join(step.split()))
        when.append(tag)
    return steps, when


def _parse_match(
    match: Any, problem: Any
) -> tuple[list[str], list[str], list[str], list[list[str] | None]]:
    if not isinstance(match, dict):
        problem("missing 'match' with an 'any' list of regexes", True)
        return [], [], [], []
    for key in sorted(set(match) - MATCH_KEYS, key=str):
        problem(f"unknown key 'match.{key}'")
    any_patterns = match.get("any")
    if not (isinstance(any_patterns, list) and any_patterns and all(isinstance(p, str) and p for p in any_patterns)):
        problem("'match.any' must be a non-empty list of regexes", True)
        any_patterns = []
    unless = match.get("unless", [])
    if unless is None or not isinstance(unless, list) or not all(isinstance(p, str) and p for p in unless):
        problem("'match.unless' must be a list of regexes", True)
        unless = []
    literals: list[list[str] | None] = []
    for key, patterns in (("any", any_patterns), ("unless", unless)):
        for number, pattern in enumerate(patterns, 1):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                problem(f"match.{key}[{number}] is not a valid regex: {exc}", True)
                continue
            if key == "unless":
                continue
            if compiled.search(""):
                problem(f"match.any[{number}] matches the empty string", True)
            needed = required_literals(pattern)
            literals.append(needed)
            if needed is None or min(map(len, needed)) < MIN_LITERAL:
                problem(
                    f"match.any[{number}] has no literal text of {MIN_LITERAL}+ characters that every match contains; "
                    "the fast prefilter cannot skip lines for it"
                )
    sqlstates: list[str] = []
    raw_codes = match.get("sqlstate", [])
    if not isinstance(raw_codes, list):
        problem("'match.sqlstate' must be a list of SQLSTATE codes")
        raw_codes = []
    for code in raw_codes:
        if isinstance(code, int) and not isinstance(code, bool):
            problem(f"SQLSTATE {code} is read by YAML as a number; quote it ('{code:05d}')")
            code = f"{code:05d}"
        if not isinstance(code, str) or not _SQLSTATE_CODE.match(code):
            problem(f"{code!r} is not a SQLSTATE (five characters, 0-9 and A-Z)")
            continue
        sqlstates.append(code)
    return any_patterns, unless, sqlstates, literals


def _parse_examples(raw: dict[str, Any], key: str, problem: Any) -> list[dict[str, str]]:
    items = raw.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        problem(f"'{key}' must be a list of {{text, source}}")
        return []
    parsed: list[dict[str, str]] = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            problem(f"{key}[{number}] must be a mapping with 'text' and 'source'")
            continue
        for extra in sorted(set(item) - EXAMPLE_KEYS, key=str):
            problem(f"unknown key {extra!r} in {key}[{number}]")
        text, source = item.get("text"), item.get("source")
        if not isinstance(text, str) or not text.strip():
            problem(f"{key}[{number}] has no 'text'")
            continue
        if not isinstance(source, str) or not source.strip():
            problem(f"{key}[{number}] has no 'source' (the client and version that printed it, or a public link)")
        parsed.append({"text": text, "source": source if isinstance(source, str) else ""})
    return parsed


# --------------------------------------------------------------------------- literal prefilter


def required_literals(pattern: str) -> list[str] | None:
    """Lower-cased strings, one of which every match of ``pattern`` contains; None if there is no such set."""
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - the parser moved
        return None
    try:
        tree = sre_parse.parse(pattern, re.IGNORECASE)
    except re.error:
        return None
    found = _required(list(tree))
    if not found:
        return None
    return sorted({literal.lower() for literal in found})


def _required(items: list[tuple[Any, Any]]) -> frozenset[str] | None:
    from re import _constants as c  # type: ignore[attr-defined]

    options: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            options.append(frozenset(["".join(run)]))
            run = []
        sub: frozenset[str] | None = None
        if op is c.SUBPATTERN:
            sub = _required(list(av[3]))
        elif op is c.ATOMIC_GROUP:
            sub = _required(list(av))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT) and av[0] >= 1:
            sub = _required(list(av[2]))
        elif op is c.BRANCH:
            branches = [_required(list(branch)) for branch in av[1]]
            if all(branches):
                sub = frozenset().union(*branches)  # type: ignore[arg-type]
        if sub:
            options.append(sub)
    if run:
        options.append(frozenset(["".join(run)]))
    if not options:
        return None
    return max(options, key=lambda option: (min(map(len, option)), -len(option)))


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path | None:
    """Where explain keeps what it can rebuild (parsed rules, the compiled prefilter); None when turned off."""
    if os.environ.get("NEONDOCTOR_NO_CACHE"):
        return None
    base = os.environ.get("NEONDOCTOR_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = os.path.join(xdg, "neondoctor") if xdg else os.path.join(os.path.expanduser("~"), ".cache", "neondoctor")
    return Path(base)


def _cache_file(dirs: list[tuple[str, Path]]) -> Path | None:
    base = cache_dir()
    if base is None:
        return None
    name = zlib.crc32("\0".join(str(folder) for _, folder in dirs).encode("utf-8", "surrogateescape"))
    return base / f"rules-{name:08x}.json"


def _cache_key(files: list[tuple[str, Path]]) -> str | None:
    parts: list[Any] = [CACHE_FORMAT, neondoctor.__version__]
    for origin, path in files:
        try:
            stat = path.stat()
        except OSError:
            return None
        parts.append([origin, str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino])
    return json.dumps(parts)


def _read_cache(cache: Path, key: str) -> RuleSet | None:
    try:
        data = json.loads(cache.read_bytes())
        if data.get("key") != key:
            return None
        dirs = [(origin, Path(folder)) for origin, folder in data["dirs"]]
        rules = [Rule(raw) for raw in data["rules"]]
        problems = [Problem(*raw) for raw in data["problems"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return RuleSet(rules, problems, dirs)


def _write_cache(cache: Path, key: str, ruleset: RuleSet) -> None:
    data = {
        "key": key,
        "dirs": [[origin, str(folder)] for origin, folder in ruleset.dirs],
        "rules": [rule.to_cache() for rule in ruleset.rules],
        "problems": [list(problem) for problem in ruleset.problems],
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(partial, cache)
    except OSError:
        pass


# --------------------------------------------------------------------------- lint and example tests


class ExampleResult(NamedTuple):
    rule: Rule
    kind: str
    """``example`` or ``not_example``."""
    index: int
    text: str
    detail: str | None
    """Why it failed: not matched, matched by mistake, or which rule ranked first; None when it passed."""

    @property
    def ok(self) -> bool:
        return self.detail is None


def run_examples(ruleset: RuleSet) -> list[ExampleResult]:
    """Run every example (must match and rank first) and not_example (must not match its rule)."""
    from neondoctor.explain import explain_text

    results: list[ExampleResult] = []
    for rule in ruleset:
        for kind, examples in (("example", rule.examples), ("not_example", rule.not_examples)):
            for index, example in enumerate(examples):
                ids = [match["id"] for match in explain_text(example["text"], ruleset).matches]
                results.append(ExampleResult(rule, kind, index, example["text"], _verdict(rule, kind, ids, ruleset)))
    return results


def _verdict(rule: Rule, kind: str, ids: list[str], ruleset: RuleSet) -> str | None:
    if kind == "not_example":
        return "matches" if rule.id in ids else None
    if rule.id not in ids:
        return "does not match"
    if ids[0] != rule.id:
        first = ruleset.by_id[ids[0]]
        return (
            f"matches, but '{first.id}' (priority {first.priority}) ranks first; this rule has priority {rule.priority}"
        )
    return None


def lint(ruleset: RuleSet) -> list[Problem]:
    """Every problem: format (found while loading) and examples."""
    problems = list(ruleset.problems)
    for result in run_examples(ruleset):
        if not result.ok:
            message = f"{result.kind}[{result.index + 1}] {result.detail}"
            problems.append(Problem(result.rule.file, result.rule.id, message))
    return problems


def _valid_hint(hint: Any, patterns: list[str]) -> bool:
    import string

    if not isinstance(hint, str) or not hint.strip():
        return False
    groups: set[str] = set()
    for pattern in patterns:
        with contextlib.suppress(re.error):
            groups |= set(re.compile(pattern).groupindex)
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(hint) if name is not None}
    except ValueError:
        return False
    return fields <= groups


def format_hint(hint: str | None, captures: dict[str, str]) -> str | None:
    """The rule's hint with the captured names filled in; None when a name was not captured or it comes out empty."""
    if not hint:
        return None
    try:
        return hint.format_map(captures) or None
    except (KeyError, IndexError, ValueError):
        return None


def tally_examples(ruleset: RuleSet) -> tuple[list[dict[str, Any]], list[str]]:
    """Per rule: examples matched first, missed, and not_examples matched by mistake; plus one line per failure."""
    rows = {rule.id: {"id": rule.id, "matched": 0, "missed": 0, "false_hits": 0} for rule in ruleset}
    failures: list[str] = []
    for result in run_examples(ruleset):
        row = rows[result.rule.id]
        if result.kind == "example":
            row["matched" if result.ok else "missed"] += 1
        elif not result.ok:
            row["false_hits"] += 1
        if not result.ok:
            text = " ".join(result.text.split())
            failures.append(f"{result.rule.id} {result.kind}[{result.index + 1}] {result.detail}: {text[:160]}")
    return list(rows.values()), failures
