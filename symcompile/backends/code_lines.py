"""The statement-level pieces of a generated function, as the templates print them.

A `Line` is one ready statement (or a compound statement's header and its one-line
body) with its provenance comment; a `Block` is a titled section of lines. Everything
here is already text: the templates only lay it out.
"""

from __future__ import annotations

import io
import textwrap
import tokenize
from dataclasses import dataclass

# The generated code's line width: every wrap of generated text is derived from it.
LINE_WIDTH = 100


@dataclass(frozen=True)
class Line:
    # one statement, ready to print (or the header of a compound statement); its
    # continuation lines are indented relative to its first
    text: str
    comment: str = ""  # provenance, comment-safe, without the leading "#"
    body: str = ""  # the one statement under `text` when it is ``if ...:``

    def wrapped_text(self, column: int) -> str:
        """`text` fitted to the line width when it starts at `column` (see `fit`)."""
        return fit(self.text, column)

    def wrapped_body(self, column: int) -> str:
        return fit(self.body, column)

    @property
    def comment_lines(self) -> tuple[str, ...]:
        """The comment wrapped to fit the line after a 4-space indent and "# "."""
        return tuple(textwrap.wrap(self.comment, LINE_WIDTH - 6, break_on_hyphens=False,
                                   subsequent_indent="  "))


@dataclass(frozen=True)
class Block:
    title: str  # "forward", "backward" or "update"
    lines: tuple[Line, ...]
    note: str = ""  # shown after the title: "# --- update: w -= lr * g ---"


_OPENING, _CLOSING = "([{", ")]}"


def fit(text: str, column: int, width: int = LINE_WIDTH) -> str:
    """One statement's `text`, first printed at `column`, continued inside its brackets
    where it is wider than `width`: the longest bracketed group at the outermost level is
    opened, its items (split at its own commas) packed on lines indented 4 deeper, each
    fitted in turn, and its closing bracket starts the last line. Strings are never
    split; text already on several lines, or with no bracket to break in, is left as it
    is. Continuation lines are indented relative to the first line."""
    if column + len(text) <= width or "\n" in text:
        return text
    terms = _sum_terms(text)
    if terms is not None:
        return _fit_terms(text, terms, column, width)
    group = _widest_group(text)
    if group is None:
        return text
    start, end, commas = group
    cuts = [start + 1, *(c + 1 for c in commas), end]
    items = [text[a:b].strip().removesuffix(",") for a, b in zip(cuts, cuts[1:], strict=False)]
    items = [item for item in items if item]
    # a trailing comma stays: it is what makes (x,) a tuple of one
    trailing = bool(commas) and not text[commas[-1] + 1:end].strip()
    pieces = [item + ("," if index < len(items) - 1 or trailing else "")
              for index, item in enumerate(items)]
    return text[:start + 1] + _packed(pieces, column + 4, width) + "\n" + text[end:]


def _packed(pieces: list[str], inner: int, width: int) -> str:
    """`pieces` packed on lines starting at column `inner` (as many a line as fit), each
    line fitted in turn, every line after a newline and 4 spaces."""
    rows, row = [], ""
    for piece in pieces:
        if row and inner + len(row) + 1 + len(piece) <= width:
            row += " " + piece
            continue
        if row:
            rows.append(row)
        row = piece
    rows.append(row)
    return "".join("\n    " + fit(r, inner, width).replace("\n", "\n    ") for r in rows)


_ASSIGNMENTS = {"=", "+=", "-=", "*=", "/=", "@="}
_OPERAND_ENDS = {tokenize.NAME, tokenize.NUMBER, tokenize.STRING}


def _sum_terms(text: str) -> tuple[int, list[int]] | None:
    """For an assignment whose value is a sum at its outermost level (``g = a*b - c +
    d``): (offset where the value starts, offsets of its own binary + and - signs);
    None for anything else."""
    offsets = _token_offsets(text)
    if offsets is None:
        return None
    depth, value, signs, previous = 0, None, [], None
    for offset, kind, token in offsets:
        if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.COMMENT):
            continue
        if kind == tokenize.OP and token in _OPENING:
            depth += 1
        elif kind == tokenize.OP and token in _CLOSING:
            depth -= 1
        elif depth == 0 and kind == tokenize.OP and token in _ASSIGNMENTS and value is None:
            value = offset + len(token)
        elif depth == 0 and value is not None and token in "+-" and previous is not None \
                and (previous[0] in _OPERAND_ENDS or previous[1] in _CLOSING):
            signs.append(offset)  # binary: it follows an operand, not an operator
        previous = (kind, token)
    return (value, signs) if value is not None and signs else None


def _fit_terms(text: str, terms: tuple[int, list[int]], column: int, width: int) -> str:
    """`text`'s value put in parentheses and continued at its own + and - signs, the
    terms packed on lines indented 4 deeper (each sign starting its term), each fitted in
    turn; the closing parenthesis starts the last line."""
    value, signs = terms
    cuts = [value, *signs, len(text)]
    pieces = [text[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False)]
    return text[:value].rstrip() + " (" + _packed(pieces, column + 4, width) + "\n)"


def _widest_group(text: str) -> tuple[int, int, list[int]] | None:
    """(offset of the opening bracket, offset of its closing bracket, offsets of its own
    commas) of the widest bracketed group not inside another, or None."""
    offsets = _token_offsets(text)
    if offsets is None:
        return None
    groups, depth, start, commas = [], 0, 0, []
    for offset, kind, token in offsets:
        if kind != tokenize.OP:
            continue
        if token in _OPENING:
            if depth == 0:
                start, commas = offset, []
            depth += 1
        elif token in _CLOSING:
            depth -= 1
            if depth == 0:
                groups.append((start, offset, commas))
        elif token == "," and depth == 1:
            commas.append(offset)
    groups = [g for g in groups if g[1] - g[0] > 1]
    return max(groups, key=lambda g: g[1] - g[0]) if groups else None


def _token_offsets(text: str) -> list[tuple[int, int, str]] | None:
    """(offset, token type, string) of each token of one line of Python; None if it does
    not tokenize. An f-string's tokens (Python >= 3.12) count as one string."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    result, inside = [], 0
    for token in tokens:
        name = tokenize.tok_name[token.type]
        if name == "FSTRING_START":
            inside += 1
        elif name == "FSTRING_END":
            inside -= 1
        elif not inside and token.start[0] == 1:
            result.append((token.start[1], token.type, token.string))
    return result
