"""How commands print: whole values when piped, JSON on request, hints never wrapped.

Rich sizes tables to the terminal and, when output is a pipe or a CI log,
falls back to 80 columns and cuts names short (``wind…``), so a log cannot
say which columns drifted. Off a terminal the consoles here are made wide
enough that every row of a table stays one line with every value whole; on
a terminal, columns fold long values onto more lines instead of cutting
them. ``--output json`` prints one JSON document (shapes in
``loopml.cli.shapes``, documented in docs/cli.md) and nothing else on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

WIDE = 10_000
"""Width of a console that is not a terminal: no row of a table is ever cut or wrapped."""


class Format(StrEnum):
    """What a listing command prints."""

    table = "table"
    json = "json"


FormatOpt = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        help="table (for people) or json (for scripts; the shapes are in docs/cli.md).",
        case_sensitive=False,
    ),
]


def fit(console: Console) -> None:
    """Make ``console`` wide when it is not a terminal, so nothing is cut or wrapped."""
    if not console.is_terminal:
        console.width = WIDE


def wide_help() -> None:
    """``--help`` piped (to ``less``, a file, docs) is 120 columns wide, not 80 with names cut.

    Typer reads its width once from ``TERMINAL_WIDTH``; an explicit setting wins.
    """
    import os
    import sys

    from typer import rich_utils

    if not sys.stdout.isatty() and not os.environ.get("TERMINAL_WIDTH"):
        rich_utils.MAX_WIDTH = 120


def show(console: Console, table: Table) -> None:
    """Print ``table`` with every value whole (folded on a narrow terminal, never cut)."""
    for column in table.columns:
        column.overflow = "fold"
    console.print(table)


def say(console: Console, text: str) -> None:
    """One message line; never wrapped mid-command on a terminal, no markup guessed at."""
    console.print(text, soft_wrap=True, highlight=False)


def emit(value: BaseModel | Sequence[BaseModel]) -> None:
    """Print ``value`` as one JSON document on stdout."""
    data: Any = (
        value.model_dump(mode="json")
        if isinstance(value, BaseModel)
        else [item.model_dump(mode="json") for item in value]
    )
    typer.echo(json.dumps(data, indent=2, default=str))


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return url
