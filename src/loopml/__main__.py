"""``python -m loopml`` is the ``loopml`` command."""

from loopml.cli.main import app

app(prog_name="loopml")
