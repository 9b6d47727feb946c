"""Model answers as HTML for the chat view's QTextBrowser, which speaks only Qt's rich-text subset.

Qt-free so it can be tested and profiled without a display. Model output is untrusted, so raw HTML in
it is escaped rather than passed through, and the chat view re-renders the whole answer on every
token, so half-written Markdown (an unclosed fence, half a table) must render without complaint.
"""

from __future__ import annotations

import html
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.util import ClassNotFound

COPY_LINK_PREFIX = "copy-code:"
_COPY_LINK = re.compile(rf"{re.escape(COPY_LINK_PREFIX)}([0-9]+)")

# QTextBrowser draws table borders from these attributes more reliably than from CSS.
TABLE_ATTRIBUTES = {
    "border": "1",
    "cellspacing": "0",
    "cellpadding": "4",
    "style": "border-collapse: collapse;",
}

LIGHT_CODE_STYLE = "default"
DARK_CODE_STYLE = "monokai"


@dataclass(frozen=True)
class RenderedMarkdown:
    """The HTML to show, and each code block's source so its Copy link can put it on the clipboard."""

    html: str
    code_blocks: list[str]


def render_markdown(text: str, dark: bool = False) -> RenderedMarkdown:
    """Render a (possibly still streaming) model answer; code blocks are highlighted for the theme."""
    env: dict[str, Any] = {"dark": dark, "code_blocks": []}
    rendered_html = _MARKDOWN.render(text, env)
    return RenderedMarkdown(html=rendered_html, code_blocks=env["code_blocks"])


def code_block_index(href: str) -> int | None:
    """The code block a clicked "copy-code:N" link asks for, or None when the link is an ordinary one."""
    match = _COPY_LINK.fullmatch(href)
    return int(match.group(1)) if match else None


def _render_code_block(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    index: int,
    options: OptionsDict,
    env: MutableMapping[str, Any],
) -> str:
    """Fenced and indented code: a header with the language and a Copy link, then highlighted source."""
    token = tokens[index]
    language = token.info.split(maxsplit=1)[0] if token.info.strip() else ""
    lexer = _lexer_for(language)
    # Without the line break before the closing fence, so pasting into a shell doesn't run the last line.
    source = token.content.removesuffix("\n")
    block_number = len(env["code_blocks"])
    env["code_blocks"].append(source)

    label = (language or "code") if isinstance(lexer, TextLexer) else lexer.name
    header = (
        '<p style="margin-top: 8px; margin-bottom: 0; font-size: small; color: gray;">'
        f'{html.escape(label)} &middot; <a href="{COPY_LINK_PREFIX}{block_number}">Copy</a></p>'
    )
    return header + highlight(source, lexer, _code_formatter(env["dark"]))


def _render_table_open(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    index: int,
    options: OptionsDict,
    env: MutableMapping[str, Any],
) -> str:
    """Markdown tables come out bare; QTextBrowser would draw them without any cell borders."""
    tokens[index].attrs.update(TABLE_ATTRIBUTES)
    return renderer.renderToken(tokens, index, options, env)


@lru_cache(maxsize=128)  # bounded: while streaming, every prefix of a fence's info string comes by
def _lexer_for(language: str) -> Lexer:
    """The fence's language, else plain text: guessing is slow on every token and often wrong on prose."""
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return TextLexer()


@cache
def _code_formatter(dark: bool) -> HtmlFormatter:
    """Inline styles, since QTextBrowser has no external style sheet for Pygments' classes."""
    style_name = DARK_CODE_STYLE if dark else LIGHT_CODE_STYLE
    background = get_style_by_name(style_name).background_color
    return HtmlFormatter(
        style=style_name,
        noclasses=True,
        prestyles=f"margin-top: 0; background-color: {background}; padding: 6px",
    )


# "breaks": a chat answer's single newlines are meant as line breaks (poems, addresses, steps).
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)
_MARKDOWN.add_render_rule("fence", _render_code_block)
_MARKDOWN.add_render_rule("code_block", _render_code_block)
_MARKDOWN.add_render_rule("table_open", _render_table_open)
