"""The step contract.

A step is a function ``(context, params) -> None`` whose parameters are a
pydantic model. The model is the single source of truth for what a spec may
say under that step: its field names, types, defaults and docs. Declaring it
with :func:`step` gives the engine everything it needs to validate a spec
before anything runs.

A step also declares the outputs it may write (``outputs``): names of
context entries, ``"slot/key"`` for frames, models, reports and values, or a
typed field (``"trained"``, ``"registered"``...). A name may use the step's
parameters (``"data/{frame}"``) and shell wildcards (``"values/*"``). The
engine refuses a step that writes anything else, so what a resume restores
and what a later step may rely on is written down next to the step.
``loopml.testing.check_step`` checks a third-party step against this
contract. ``inputs`` names, the same way, what the step reads; the spec
check refuses a step placed before every step that writes what it reads
(``evaluate_model`` before ``train_model``), naming the step's path.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from loopml.core.access import DataPolicy
from loopml.core.context import StepContext
from loopml.core.spec import ExperimentConfig


class StepParams(BaseModel):
    """Base for step parameter models: unknown keys and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


P = TypeVar("P", bound=BaseModel)

StepFunction = Callable[[StepContext, P], None]
PeekColumns = Callable[[P, Path], "list[str] | None"]
CheckAccess = Callable[[P, "Path | None", DataPolicy], None]


@dataclass(frozen=True)
class StepDefinition(Generic[P]):
    """A registered step: what it is called, what it takes and what it does.

    ``peek_columns`` lets a data step name its columns cheaply (a header read)
    so a missing target column is caught by ``loopml validate`` before any run.
    ``needs_network`` marks steps that validation must not contact.
    ``check_access`` raises an AccessError when the parameters name data the
    policy does not allow (checked without reading anything). A step that can
    read data (it peeks or needs the network) and has no such check is refused
    for specs submitted over HTTP.
    ``outputs`` names what the step may write (see the module doc); ``None``
    means undeclared, which the engine tolerates for old plugins but
    ``check_step`` refuses.
    """

    name: str
    func: StepFunction[P]
    params: type[P]
    summary: str = ""
    peek_columns: PeekColumns[P] | None = None
    needs_network: bool = False
    check_access: CheckAccess[P] | None = None

    @property
    def reads_data(self) -> bool:
        """Whether the step reads files, databases or the network (so the data policy applies)."""
        return self.peek_columns is not None or self.needs_network or self.check_access is not None

    outputs: tuple[str, ...] | None = None
    inputs: tuple[str, ...] = ()

    def declared_inputs(self, params: BaseModel) -> tuple[str, ...]:
        """What the step reads, named like outputs, with ``{param}`` placeholders filled."""
        values = params.model_dump()
        return tuple(pattern.format(**values) for pattern in self.inputs)

    def declared_outputs(self, params: BaseModel) -> tuple[str, ...] | None:
        """The output names with ``{param}`` placeholders filled from ``params``."""
        if self.outputs is None:
            return None
        values = params.model_dump()
        return tuple(pattern.format(**values) for pattern in self.outputs)

    def undeclared(self, params: BaseModel, written: Iterable[str]) -> list[str]:
        """The names in ``written`` the step did not declare (none when it declared nothing)."""
        declared = self.declared_outputs(params)
        if declared is None:
            return []
        return [
            name
            for name in written
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in declared)
        ]

    def parse(self, raw: dict[str, Any], experiment: ExperimentConfig | None) -> P:
        """Validate raw spec parameters; the experiment config (if valid) is the context."""
        context = (
            {}
            if experiment is None
            else {"problem_type": experiment.problem_type, "experiment": experiment}
        )
        return self.params.model_validate(raw, context=context)

    def __call__(self, context: StepContext, params: P) -> None:
        self.func(context, params)


def step(
    name: str,
    *,
    params: type[P],
    peek_columns: PeekColumns[P] | None = None,
    needs_network: bool = False,
    check_access: CheckAccess[P] | None = None,
    outputs: Iterable[str] | None = None,
    inputs: Iterable[str] = (),
) -> Callable[[StepFunction[P]], StepDefinition[P]]:
    """Declare ``func`` as step ``name``: takes ``params``, reads ``inputs``, writes ``outputs``.

    The function's docstring becomes the step's summary in ``loopml steps list``.
    """

    def register(func: StepFunction[P]) -> StepDefinition[P]:
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        return StepDefinition(
            name=name,
            func=func,
            params=params,
            summary=summary,
            peek_columns=peek_columns,
            needs_network=needs_network,
            check_access=check_access,
            outputs=None if outputs is None else tuple(outputs),
            inputs=tuple(inputs),
        )

    return register
