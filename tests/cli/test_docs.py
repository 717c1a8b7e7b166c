"""The docs a newcomer reads agree with the code: options, links, tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from loopml.cli.main import app

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _options(*path: str) -> set[str]:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    names = set()
    for parameter in command.params:
        if parameter.param_type_name == "option":
            names.update(o for o in [*parameter.opts, *parameter.secondary_opts] if o != "--help")
    assert names, "no options found"
    return names


def test_monitoring_doc_lists_every_option_of_monitor_help() -> None:
    text = (ROOT / "docs" / "monitoring.md").read_text()
    missing = [option for option in sorted(_options("monitor")) if f"`{option}" not in text]
    missing = [o for o in missing if not re.search(rf"[`/, ]{re.escape(o)}\b", text)]
    assert not missing, f"docs/monitoring.md does not mention {missing}"


def test_no_link_points_outside_the_repository() -> None:
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            assert "://" not in target, f"{doc.name} links outside the repository: {target}"
            if target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.name} links to {target}, which does not exist"
            assert ROOT in path.parents or path == ROOT, f"{doc.name}: {target} leaves the repo"


def test_readme_commands_table_is_one_table() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| command | what it does |")
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    commands = " ".join(rows)
    for command in ("loopml validate", "loopml serve", "loopml monitor", "loopml predict-batch"):
        assert command in commands, f"{command} is not in the README's commands table"


def test_walkthrough_is_linked_and_covers_every_protocol() -> None:
    assert "docs/walkthrough.md" in (ROOT / "README.md").read_text()
    text = (ROOT / "docs" / "walkthrough.md").read_text()
    for needle in ("/predict", "/invocations", "/feedback", "/v2/models/", "loopml monitor"):
        assert f"{needle}" in text and "curl" in text
    assert "--report" in text
