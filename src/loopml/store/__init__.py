"""The metadata store: every pipeline run and step, in SQL (SQLite or PostgreSQL)."""

from loopml.store.db import connect
from loopml.store.runs import RunStore, RunView, StepView

__all__ = ["RunStore", "RunView", "StepView", "connect"]
