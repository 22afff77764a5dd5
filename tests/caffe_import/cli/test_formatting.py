"""--help of every verb of both commands: every option explained, defaults shown, plain text."""
from __future__ import annotations

import argparse

import pytest

from caffe_import.cli import build_parser as caffe_import_parser
from caffe_import.cli.formatting import HelpFormatter, plain, shows_default
from fcn_repro.cli import build_parser as fcn_repro_parser


def _verbs():
    for top in (caffe_import_parser(), fcn_repro_parser()):
        (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
        yield top.prog, top
        for name, parser in sub.choices.items():
            yield f"{top.prog} {name}", parser


VERBS = dict(_verbs())


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_option_has_help_defaults_shown_and_no_backticks(verb):
    parser = VERBS[verb]
    formatter = HelpFormatter(parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{verb} {name}: no help text"
        if shows_default(action):
            assert "default" in formatter.help_text(action), f"{verb} {name}: default not shown"
    text = parser.format_help()
    assert "`" not in text, [line for line in text.splitlines() if "`" in line]


def test_fcn_repro_train_states_its_output_folder():
    assert "(default: train_out)" in " ".join(VERBS["fcn-repro train"].format_help().split())


def test_plain_text_of_restructuredtext_roles_and_literals():
    assert plain("``a.b`` and `c` via :func:`x.y` and :class:`~pkg.Cls`") == "a.b and c via x.y and Cls"


def test_paragraphs_are_refilled_and_indented_examples_kept():
    parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter, description=(
        "First paragraph\nwrapped by hand.\n\nExamples:\n\n    p --a 1 \\\n        --b 2\n"))
    text = parser.format_help()
    assert "First paragraph wrapped by hand." in text
    assert "    p --a 1 \\\n        --b 2" in text
