"""The page shell (header, navigation, stylesheet, script) and the partial responses.

A page request gets the whole document. The page script asks for the same URL with
`X-Partial: 1` (or `?partial=1`) and gets only the inside of `<main id="content">`,
rendered by the same view code, which it swaps in — so live updates never render
anything on the client.
"""

from __future__ import annotations

from aiohttp import web

from agentops_ui.assets import SCRIPT_URL, STYLE_URL
from agentops_ui.markup import Markup, el

NAV = (("overview", "/", "Overview"), ("faults", "/faults", "Faults"), ("checks", "/checks", "Checks"))


def wants_partial(request: web.Request) -> bool:
    return request.headers.get("X-Partial") == "1" or request.query.get("partial") == "1"


def page(title: str, content: Markup, *, nav: str | None) -> Markup:
    links = [el("a", label, href=href, aria_current="page" if key == nav else None) for key, href, label in NAV]
    head = el("head",
              el("meta", charset="utf-8"),
              el("meta", name="viewport", content="width=device-width, initial-scale=1"),
              el("title", f"{title} · AgentOps"),
              el("link", rel="stylesheet", href=STYLE_URL),
              el("script", src=SCRIPT_URL, defer=True))
    header = el("header",
                el("a", "AgentOps", class_="brand", href="/"),
                el("nav", links, aria_label="Main"),
                # Without JavaScript the page is a snapshot; the script says "live".
                el("span", "snapshot", id="live-status", role="status"))
    body = el("body", header, el("main", content, id="content"))
    return Markup("<!DOCTYPE html>\n" + el("html", head, body, lang="en"))


def respond(request: web.Request, title: str, content: Markup, *, nav: str | None, status: int = 200) -> web.Response:
    """The whole page, or only the content for the page script."""
    text = content if wants_partial(request) else page(title, content, nav=nav)
    # Caches must key on X-Partial: a shared cache handing a fragment to a page load
    # would show a page without its shell.
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store", "Vary": "X-Partial"})
