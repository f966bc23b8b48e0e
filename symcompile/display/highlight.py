"""Syntax highlighting of generated Python, for terminals (ANSI) and the HTML page.

Uses the standard library's tokenizer, so highlighting needs no extra package and
never changes the text: removing the colours gives back the source exactly.
"""

from __future__ import annotations

import html
import io
import keyword
import os
import sys
import tokenize

# token kind -> (ANSI colour, CSS class)
STYLES = {
    "keyword": ("\x1b[1;34m", "kw"),
    "comment": ("\x1b[2;32m", "cm"),
    "string": ("\x1b[33m", "st"),
    "number": ("\x1b[35m", "nu"),
    "function": ("\x1b[1;36m", "fn"),
}
RESET = "\x1b[0m"


def _kinds(source: str):
    """(start offset, end offset, kind) of every token worth colouring."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    previous = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = None
            if token.type == tokenize.COMMENT:
                kind = "comment"
            elif token.type == tokenize.STRING:
                kind = "string"
            elif token.type == tokenize.NUMBER:
                kind = "number"
            elif token.type == tokenize.NAME and keyword.iskeyword(token.string):
                kind = "keyword"
            elif token.type == tokenize.NAME and previous == "def":
                kind = "function"
            if token.type == tokenize.NAME:
                previous = token.string
            if kind:
                (row, col), (end_row, end_col) = token.start, token.end
                yield starts[row - 1] + col, starts[end_row - 1] + end_col, kind
    except (tokenize.TokenError, IndentationError):
        return


def _render(source: str, open_tag, close_tag, escape) -> str:
    out, position = [], 0
    for start, end, kind in _kinds(source):
        out.append(escape(source[position:start]))
        out.append(open_tag(kind) + escape(source[start:end]) + close_tag(kind))
        position = end
    out.append(escape(source[position:]))
    return "".join(out)


def ansi(source: str) -> str:
    return _render(source, lambda k: STYLES[k][0], lambda k: RESET, lambda s: s)


def as_html(source: str) -> str:
    return _render(source, lambda k: f'<span class="{STYLES[k][1]}">', lambda k: "</span>",
                   html.escape)


def use_colour(choice: str = "auto", stream=None) -> bool:
    """--color always/never/auto: auto colours a terminal unless NO_COLOR or TERM=dumb."""
    if choice != "auto":
        return choice == "always"
    stream = stream or sys.stdout
    return (hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb")
