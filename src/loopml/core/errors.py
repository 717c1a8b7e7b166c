"""The one exception hierarchy loopml raises.

::

    LoopmlError                   anything loopml reports to a person
    ├── ConfigError               a setting or settings file is wrong
    ├── SpecError                 a pipeline spec is wrong; carries every issue at once
    ├── DataError                 data could not be read, or does not fit the spec
    │   ├── SkewError             data differs from its reference profile (carries the report)
    │   ├── AccessError           data a job may not touch (outside the data roots, unnamed DB)
    │   ├── MissingDataFileError       a local data file a spec names is not there
    │   ├── InputFileError        a file given to a command is missing, a folder, unreadable
    │   │                         or lacks the columns it needs (exit code 2)
    │   └── InputError            a request's input does not fit the served model's signature
    ├── StepError                 a step failed while running (wraps the cause)
    ├── PluginError               a step plugin could not be loaded
    ├── StoreError                the metadata store cannot be reached or migrated
    ├── RunNotFoundError          no recorded run has that id
    ├── JobNotFoundError          no submitted job has that id
    ├── JobCancelledError         a job was cancelled while it ran
    ├── MessageError              a queue message is malformed (dead-lettered)
    ├── BrokerError               the message broker cannot be reached
    ├── ModelReferenceError       a model reference is not written in the one grammar
    ├── ModelNotFoundError        a model reference names no registered version
    ├── UntrustedModelError       a version's artifacts changed since registration, or no one
    │                             trusted it; refused before anything is unpickled
    ├── ModelLoadError            a registered model cannot be resolved or loaded for serving
    ├── ProtocolError             (loopml.serving.mlflow_protocol) a request MLflow would refuse
    └── V2Error                   (loopml.serving.v2) a request Open Inference V2 rules out

The two protocol errors live with their protocol, whose HTTP status and error
body they carry, but they are ``LoopmlError``s like every other refusal.

Every message says what was wrong, where (spec path, column, setting) and
what would be right, so the CLI can print it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


class LoopmlError(Exception):
    """Base of everything loopml raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class ConfigError(LoopmlError):
    """A setting, flag or settings file cannot be used as given."""

    exit_code = 2


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec, located by its path (``pipeline[0].MLSteps[1].train_model``)."""

    path: str
    message: str
    found: str | None = None
    allowed: str | None = None
    suggestion: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        """One line a person can act on."""
        parts = [f"{self.path or '<spec>'}: {self.message}"]
        if self.found is not None:
            parts.append(f"found {self.found}")
        if self.allowed is not None:
            parts.append(f"allowed: {self.allowed}")
        text = "; ".join(parts)
        if self.suggestion is not None:
            text += f" (did you mean {self.suggestion!r}?)"
        return text


class SpecError(LoopmlError):
    """A spec that cannot run. All of its issues are reported together."""

    exit_code = 2

    def __init__(self, issues: Sequence[SpecIssue], source: str | None = None) -> None:
        self.issues = list(issues)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.issues)
        lines = [f"{count} problem{'s' if count != 1 else ''}{where}:"]
        lines += [f"  - {issue.render()}" for issue in self.issues]
        super().__init__("\n".join(lines))


class DataError(LoopmlError):
    """Data that cannot be read, or that does not match what the spec asks of it."""


class MissingDataFileError(DataError):
    """A local data file a spec names does not exist.

    Carries the step parameter that named it, so spec checks (``validate``,
    ``submit``) report it as an issue at that parameter, with what would do.
    """

    def __init__(self, path: str, param: str, base_dir: object) -> None:
        self.path, self.param = path, param
        self.allowed = (
            f"an existing file; relative paths resolve against the spec's folder ({base_dir})"
        )
        super().__init__(f"no such file {path!r}")

    def issue(self, step_path: str) -> SpecIssue:
        """The spec issue at ``step_path.param``."""
        return SpecIssue(f"{step_path}.{self.param}", str(self), allowed=self.allowed)


class InputFileError(DataError):
    """A file named on the command line (``--input``, ``--data``, ``--output``) cannot be used.

    Missing, a folder, empty, in a format the command does not read, without the
    columns it needs, or an output that cannot be written: the person typed
    something wrong, so the CLI exits 2 (bad input), unlike a DataError met while
    a run is under way. The message names the file and the option, never its contents.
    """

    exit_code = 2


class SkewError(DataError):
    """Data that differs from the reference profile it must match.

    ``report`` is the whole :class:`loopml.core.profile.SkewReport`; its
    ``schema_issues`` name the columns (serving answers 422 with them).
    """

    def __init__(self, message: str, report: Any) -> None:
        self.report = report
        super().__init__(message)


class AccessError(DataError):
    """Data a job may not touch: a file outside the data roots, a database not configured by name.

    The message names the path or source as given, never anything read from it.
    """

    exit_code = 2


class InputError(DataError):
    """A request's input that the served model cannot score, located by ``field``.

    ``expected`` says what would be right; servers answer it with a 4xx, never a 5xx.
    """

    def __init__(self, field: str, message: str, expected: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.detail = message
        text = f"{field}: {message}" if field else message
        if expected:
            text += f"; expected {expected}"
        super().__init__(text)


class StepError(LoopmlError):
    """A step raised while running. ``step`` and ``position`` say which one."""

    def __init__(self, step: str, position: int, cause: BaseException) -> None:
        self.step = step
        self.position = position
        self.cause = cause
        super().__init__(f"step {position} ({step}) failed: {type(cause).__name__}: {cause}")


class PluginError(LoopmlError):
    """A third-party step could not be imported or does not follow the step contract."""


class StoreError(LoopmlError):
    """The metadata store at the configured URL cannot be used."""


class JournalError(StoreError):
    """The local prediction journal cannot be written (disk full, folder gone).

    A prediction is answered only once it is journaled, so the server answers
    503 instead: the client may retry, and nothing unlogged is handed out.
    """


class RunNotFoundError(LoopmlError):
    """No run with the given id is recorded in the metadata store."""

    exit_code = 2


class JobNotFoundError(LoopmlError):
    """No job with the given id was submitted to this metadata store."""

    exit_code = 2


class JobCancelledError(LoopmlError):
    """Raised between steps when someone cancelled the running job."""


class MessageError(LoopmlError):
    """A queue message that no worker can act on: wrong shape, missing fields, bad values."""


class ModelNotFoundError(LoopmlError):
    """A model reference (``name@alias`` or ``name/version``) that the registry cannot resolve."""

    exit_code = 2


class ModelReferenceError(LoopmlError):
    """A model reference not written as ``NAME``, ``NAME@ALIAS``, ``NAME/VERSION`` (or models:/)."""

    exit_code = 2


class UntrustedModelError(LoopmlError):
    """A registered version loopml refuses to load: loading it would run code no one vouched for.

    ``name``/``version`` say which version, ``reason`` why (artifacts changed since
    registration, or registered outside loopml and neither approved nor from a trusted
    registrar). Raised before any of its files is unpickled.
    """

    exit_code = 3

    def __init__(self, name: str, version: str, reason: str) -> None:
        self.name = name
        self.version = version
        self.reason = reason
        super().__init__(f"refusing to load model {name!r} version {version}: {reason}")


class BrokerError(LoopmlError):
    """The broker at ``LOOPML_BROKER_URL`` refused or could not take a message."""


class ModelLoadError(LoopmlError):
    """The model to serve cannot be resolved in the registry or loaded from it."""

    exit_code = 2
