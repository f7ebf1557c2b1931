"""Test helpers: validate a JSON output against its shipped schema; render Markdown the way GitHub does.

markdown-it-py is a CommonMark-compliant parser, as is GitHub's cmark-gfm: the same HTML-block rules
decide whether a ``<details>`` block is closed and whether Markdown inside it renders, and its
``table`` rule follows GFM's (escaped pipes inside cells included). mistune is faster but departs
from CommonMark in exactly those corners, so it would be a weaker witness here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import jsonschema
from markdown_it import MarkdownIt

VOID = {"br", "hr", "img", "input", "meta", "link"}


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((resources.files("neondoctor") / "schemas" / f"{name}.json").read_text(encoding="utf-8"))


def validate(output: str, command: str) -> dict[str, Any]:
    """Parse a --json output, check its schema key and validate it against the shipped JSON Schema."""
    data = json.loads(output)
    name = command.replace(" ", ".")
    assert data["schema"] == f"neondoctor.{name}/1", data.get("schema")
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)
    return data


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    def find_all(self, tag: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag:
                    found.append(child)
                found.extend(child.find_all(tag))
        return found

    def elements(self) -> list[Node]:
        return [child for child in self.children if isinstance(child, Node)]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root")
        self.stack = [self.root]
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.stack[-1].tag != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1].tag}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def markdown_to_html(text: str) -> str:
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def html_tree(html_text: str) -> Node:
    """The HTML as a tree; every tag must be closed in order."""
    builder = _TreeBuilder()
    builder.feed(html_text)
    builder.close()
    assert not builder.errors, builder.errors
    assert builder.stack == [builder.root], f"unclosed: {[n.tag for n in builder.stack[1:]]}"
    return builder.root


def table_rows(table: Node) -> list[list[str]]:
    body = table.find_all("tbody")[0]
    return [[cell.text for cell in row.elements()] for row in body.find_all("tr")]
