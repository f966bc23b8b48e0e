"""The statement-level pieces of a generated function, as the templates print them.

A `Line` is one ready statement (or a compound statement's header and its one-line
body) with its provenance comment; a `Block` is a titled section of lines. Everything
here is already text: the templates only lay it out.
"""

from __future__ import annotations

import textwrap
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
