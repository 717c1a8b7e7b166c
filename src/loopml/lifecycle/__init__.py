"""Moving a model through its life: promote, roll back, approve, and the log of every move.

Sits above ``loopml.registry`` and ``loopml.store`` so it can join them: MLflow
holds where each alias points now, the metadata store's alias log holds every
move that got it there. Pipeline steps and the CLI call these functions; none
moves an alias any other way.
"""

from loopml.lifecycle.aliases import (
    approve,
    current_actor,
    history,
    move_alias,
    promote,
    reject,
    rollback,
    served_at,
)
from loopml.lifecycle.trust import approve_files, check_trusted, load_trusted, register

__all__ = [
    "approve",
    "approve_files",
    "check_trusted",
    "current_actor",
    "history",
    "load_trusted",
    "move_alias",
    "promote",
    "register",
    "reject",
    "rollback",
    "served_at",
]
