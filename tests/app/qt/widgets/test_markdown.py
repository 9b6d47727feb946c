"""Model answers rendered for QTextBrowser: structure, highlighted code with Copy links, no raw HTML."""

from __future__ import annotations

import re

import pytest

from app.qt.widgets.markdown import RenderedMarkdown, code_block_index, render_markdown

PYTHON_SOURCE = 'def greet(name):\n    return f"Hello, {name}"'
INLINE_COLOUR = re.compile(r'<span style="[^"]*color: #[0-9A-Fa-f]{3,6}')


def fenced(language: str, source: str) -> str:
    return f"```{language}\n{source}\n```\n"


def test_headings_render_at_their_level():
    rendered = render_markdown("# Title\n\n## Section\n\n### Detail\n")
    assert "<h1>Title</h1>" in rendered.html
    assert "<h2>Section</h2>" in rendered.html
    assert "<h3>Detail</h3>" in rendered.html


def test_bullet_and_numbered_lists():
    rendered = render_markdown("- apples\n- pears\n\n1. first\n2. second\n")
    assert (
        "<ul>" in rendered.html and "<li>apples</li>" in rendered.html and "<li>pears</li>" in rendered.html
    )
    assert (
        "<ol>" in rendered.html and "<li>first</li>" in rendered.html and "<li>second</li>" in rendered.html
    )


def test_table_has_its_cells_and_visible_borders():
    rendered = render_markdown("| Model | Size |\n|---|---:|\n| smollm2 | 135M |\n| gemma3 | 270M |\n")
    assert re.search(r'<table [^>]*border="1"', rendered.html)
    assert 'cellpadding="' in rendered.html
    for cell in ("Model", "Size", "smollm2", "135M", "gemma3", "270M"):
        assert f">{cell}</t" in rendered.html


def test_python_fence_is_highlighted_with_inline_colours_and_a_copy_link():
    rendered = render_markdown("Here you go:\n\n" + fenced("python", PYTHON_SOURCE) + "\nDone.")
    assert rendered.code_blocks == [PYTHON_SOURCE]
    assert INLINE_COLOUR.search(rendered.html)
    assert 'class="' not in rendered.html.replace('class="highlight"', "")
    assert '<a href="copy-code:0">Copy</a>' in rendered.html
    assert "Python" in rendered.html


def test_each_code_block_gets_its_own_copy_link_in_order():
    text = fenced("python", "a = 1") + "\nand\n\n" + fenced("bash", "ls -l") + "\n    indented()\n"
    rendered = render_markdown(text)
    assert rendered.code_blocks == ["a = 1", "ls -l", "indented()"]
    for index in range(3):
        assert f'href="copy-code:{index}"' in rendered.html


def test_dark_and_light_code_use_different_colours():
    light = render_markdown(fenced("python", PYTHON_SOURCE), dark=False).html
    dark = render_markdown(fenced("python", PYTHON_SOURCE), dark=True).html
    assert set(INLINE_COLOUR.findall(light)) != set(INLINE_COLOUR.findall(dark))


def test_unknown_language_falls_back_to_plain_text_under_its_own_name():
    rendered = render_markdown(fenced("no-such-language", "x <- y"))
    assert rendered.code_blocks == ["x <- y"]
    assert "no-such-language" in rendered.html
    assert "x &lt;- y" in rendered.html
    assert 'href="copy-code:0"' in rendered.html


def test_unclosed_fence_while_streaming_renders_what_has_arrived():
    rendered = render_markdown("Try this:\n\n```python\nfor i in range(3):\n    pri")
    assert rendered.code_blocks == ["for i in range(3):\n    pri"]
    assert "range" in rendered.html
    assert 'href="copy-code:0"' in rendered.html


@pytest.mark.parametrize(
    "partial",
    ["| a | b |", "| a | b |\n|--", "| a | b |\n|---|---|\n| 1 |", "```", "```py", "**bold", "[link](http"],
)
def test_half_written_markdown_renders_without_error(partial: str):
    assert isinstance(render_markdown(partial), RenderedMarkdown)


def test_raw_html_from_the_model_is_escaped():
    text = "<script>alert(1)</script>\n\nInline <img src=x onerror=alert(1)> too.\n"
    rendered = render_markdown(text)
    assert "<script>" not in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html


def test_html_inside_a_code_block_is_escaped_and_its_source_kept_verbatim():
    rendered = render_markdown(fenced("html", "<script>alert(1)</script>"))
    assert "<script>" not in rendered.html
    assert rendered.code_blocks == ["<script>alert(1)</script>"]


def test_fence_info_string_cannot_inject_markup():
    rendered = render_markdown(fenced("<b>evil</b>", "x"))
    assert "<b>" not in rendered.html


def test_inline_code():
    rendered = render_markdown("Call `render_markdown(text)` once per token.")
    assert "<code>render_markdown(text)</code>" in rendered.html
    assert rendered.code_blocks == []


def test_links_keep_their_target_and_script_links_are_dropped():
    rendered = render_markdown("See [the docs](https://example.org/docs) or [this](javascript:alert(1)).")
    assert '<a href="https://example.org/docs">the docs</a>' in rendered.html
    assert 'href="javascript:' not in rendered.html


def test_strikethrough():
    assert "<s>gone</s>" in render_markdown("~~gone~~").html


@pytest.mark.parametrize(
    ("href", "index"),
    [
        ("copy-code:0", 0),
        ("copy-code:12", 12),
        ("copy-code:", None),
        ("copy-code:-1", None),
        ("copy-code:1x", None),
        ("copy-code:²", None),
        ("https://example.org/copy-code:1", None),
        ("", None),
    ],
)
def test_code_block_index_parses_only_copy_links(href: str, index: int | None):
    assert code_block_index(href) == index


def test_rerendering_a_long_answer_on_every_token_works():
    section = (
        "## Step\n\nSome **explanation** with `inline code` and a [link](https://example.org).\n\n"
        "- one\n- two\n\n| col | val |\n|---|---|\n| a | 1 |\n\n" + fenced("python", PYTHON_SOURCE) + "\n"
    )
    answer = section * (5000 // len(section) + 1)
    assert len(answer) >= 5000
    for _ in range(50):
        rendered = render_markdown(answer)
    assert len(rendered.code_blocks) == answer.count("```python")
