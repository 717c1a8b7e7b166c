"""What every ``loopml`` sub-command shares: the consoles, the settings, failing with a message.

Kept apart from :mod:`loopml.cli.main`, which imports every sub-command to
build the app: a sub-command importing ``main`` back would be an import
cycle (forbidden by an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from loopml.core.errors import LoopmlError
from loopml.core.settings import Settings, get_settings

out = Console()
err = Console(stderr=True, soft_wrap=True)

SpecArg = Annotated[
    Path, typer.Argument(help="Pipeline spec, JSON (lenient) or YAML.", show_default=False)
]


def fail(error: LoopmlError) -> NoReturn:
    """Print a loopml error for a person and exit with its code (2 for bad input)."""
    err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    raise typer.Exit(error.exit_code)


def escape(text: str) -> str:
    """``text`` with Rich markup characters escaped, to print it as it is."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def settings() -> Settings:
    """The settings, or an exit with a one-line message naming the bad setting."""
    try:
        return get_settings()
    except LoopmlError as error:
        fail(error)
    except Exception as error:  # pydantic's ValidationError for a malformed LOOPML_* variable
        err.print(f"[bold red]error:[/] invalid LOOPML_* setting: {escape(str(error))}")
        raise typer.Exit(2) from error


def where(config: Settings) -> str:
    """Which home, tracking URI and metadata store a command looked in (passwords hidden)."""
    from loopml.cli.output import safe_url

    return (
        f"home {config.home.resolve()}, tracking URI {safe_url(config.tracking)}, "
        f"metadata store {safe_url(config.database)}"
    )
