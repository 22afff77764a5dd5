"""How both commands render ``--help``: plain text, paragraphs kept, defaults shown.

Verb descriptions are often a module's docstring, written in reStructuredText for the API
docs; :class:`HelpFormatter` renders its inline markup as plain text (````x```` and
``:func:`x``` become ``x``), refills each paragraph to the terminal's width, keeps indented
blocks (examples) line for line, and appends ``(default: X)`` to an option's help when the
option has a default its help does not already state.
"""
from __future__ import annotations

import argparse
import re

_ROLE = re.compile(r":[\w:.-]+:`(~?)([^`]+)`")  # :func:`x`, :class:`~a.B` (B)
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"`([^`]+)`")


def plain(text: str) -> str:
    """reStructuredText inline markup as plain text (roles, literals, interpreted text)."""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return _INTERPRETED.sub(r"\1", _LITERAL.sub(r"\1", text))


def shows_default(action: argparse.Action) -> bool:
    """Whether ``action`` has a default worth stating: not None, False, empty or suppressed."""
    default = action.default
    return (bool(action.option_strings) and default is not None and default is not False
            and default is not argparse.SUPPRESS and default != [] and not isinstance(action, (
                argparse._HelpAction, argparse._VersionAction)))


class HelpFormatter(argparse.HelpFormatter):
    """See the module doc."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks = []
        for block in re.split(r"\n[ \t]*\n", plain(text).strip("\n")):
            lines = block.split("\n")
            if any(line[:1].isspace() for line in lines[1:]) or block[:1].isspace():
                blocks.append("\n".join(indent + line for line in lines))  # an example: verbatim
            else:
                blocks.append(super()._fill_text(" ".join(line.strip() for line in lines), width, indent))
        return "\n\n".join(blocks)

    def help_text(self, action: argparse.Action) -> str:
        """The help line argparse prints for ``action``, defaults filled in."""
        return self._expand_help(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shows_default(action) and "default" not in text.lower():
            text += " (default: %(default)s)"
        return text

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))
