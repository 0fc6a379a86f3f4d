"""Escaped HTML by construction: a tiny element builder instead of a template engine.

Everything that is not already `Markup` is escaped on its way into a page — text and
attribute values alike (`html.escape` with quotes) — so an agent name, a label, an
annotation or an Event message holding `<script>` comes out as text. `Markup` is only
ever produced here (by `el`, `escape`, `join`) or from string constants in the code,
never from data.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Union


class Markup(str):
    """A string of HTML that is safe to send as is."""

    __slots__ = ()


Child = Union[str, int, float, None, Iterable["Child"]]
Attr = Union[str, int, float, bool, None]

# Elements without a closing tag.
_VOID = frozenset({"meta", "link", "br", "hr", "img", "input"})


def escape(value: Child) -> Markup:
    """`value` as HTML: Markup passes through, None is empty, iterables are concatenated."""
    if value is None:
        return Markup("")
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return Markup(html.escape(value, quote=True))
    if isinstance(value, (int, float)):
        return Markup(html.escape(str(value)))
    return Markup("".join(escape(v) for v in value))


def join(parts: Iterable[Child], sep: str = "") -> Markup:
    return Markup(html.escape(sep).join(escape(p) for p in parts))


def _attr_name(name: str) -> str:
    # Python keywords take a trailing underscore (class_, for_); data_agent → data-agent.
    return name.rstrip("_").replace("_", "-")


def attrs(**values: Attr) -> Markup:
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        if value is True:
            out.append(f" {_attr_name(name)}")
        else:
            out.append(f' {_attr_name(name)}="{html.escape(str(value), quote=True)}"')
    return Markup("".join(out))


def el(tag: str, *children: Child, **attributes: Attr) -> Markup:
    """`<tag attrs>children</tag>`, every child and attribute value escaped unless already Markup."""
    opening = f"<{tag}{attrs(**attributes)}>"
    if tag in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{escape(children)}</{tag}>")
