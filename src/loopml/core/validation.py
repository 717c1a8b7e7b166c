"""Turn pydantic's validation errors into :class:`SpecIssue` s with spec paths.

Step parameters and the experiment config are pydantic models; their errors
carry a location tuple. Here that becomes ``pipeline[0].MLSteps[1].train_model.
modeling_params.fold`` plus what was found, what is allowed and, for unknown
keys, the nearest allowed name.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from loopml.core.errors import SpecIssue
from loopml.core.suggest import closest

CHOICE_ERROR = "loopml_choice"


def choice_error(what: str, value: object, allowed: Sequence[str]) -> PydanticCustomError:
    """An error for a value outside a fixed vocabulary, with a 'did you mean'.

    Raise it from a validator; :func:`issues_from_validation_error` renders it.
    """
    suggestion = closest(str(value), allowed) if isinstance(value, str) else None
    return PydanticCustomError(
        CHOICE_ERROR,
        "unknown {what}",
        {
            "what": what,
            "found": repr(value),
            "allowed": ", ".join(allowed),
            "suggestion": suggestion or "",
        },
    )


def join_path(prefix: str, loc: Iterable[int | str]) -> str:
    """``prefix`` followed by ``.name`` for keys and ``[i]`` for list positions."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def issues_from_validation_error(
    exc: ValidationError, model: type[BaseModel], prefix: str
) -> list[SpecIssue]:
    """Every error of ``exc`` as a located, actionable issue."""
    issues: list[SpecIssue] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path = join_path(prefix, loc)
        kind = error["type"]
        ctx = error.get("ctx") or {}
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            name = str(loc[-1])
            issues.append(
                SpecIssue(
                    path=path,
                    message="unknown parameter",
                    found=repr(name),
                    allowed=", ".join(allowed) if allowed else None,
                    suggestion=closest(name, allowed) if allowed else None,
                )
            )
        elif kind == "missing":
            issues.append(SpecIssue(path=path, message="required parameter is missing"))
        elif kind == CHOICE_ERROR:
            issues.append(
                SpecIssue(
                    path=path,
                    message=f"unknown {ctx.get('what', 'value')}",
                    found=str(ctx.get("found")),
                    allowed=str(ctx.get("allowed")),
                    suggestion=str(ctx["suggestion"]) if ctx.get("suggestion") else None,
                )
            )
        elif kind == "literal_error":
            expected = str(ctx.get("expected", ""))
            allowed = [part.strip(" '\"") for part in expected.replace(" or ", ", ").split(",")]
            value = error.get("input")
            issues.append(
                SpecIssue(
                    path=path,
                    message="not one of the allowed values",
                    found=repr(value),
                    allowed=expected,
                    suggestion=closest(value, allowed) if isinstance(value, str) else None,
                )
            )
        else:
            message = error["msg"]
            if message.startswith("Value error, "):
                message = message.removeprefix("Value error, ")
            issues.append(SpecIssue(path=path, message=message, found=_short(error.get("input"))))
    return issues


def _short(value: Any) -> str | None:
    if isinstance(value, dict | list) and len(repr(value)) > 80:
        return f"a {type(value).__name__}"
    return repr(value)


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the nested model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _item_type(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``X | None`` or ``list[X]``, else the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def _item_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return _model_in(args[0]) if args else annotation
