"""The ``loopml`` command: a thin face over the engine and the stores."""
