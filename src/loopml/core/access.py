"""What data a job may touch, and how secrets in stored specs are shown.

A spec from the machine's own user (``loopml run``, ``validate``, ``submit``)
may read any file and connect to any database, as that user could anyway. A
spec that came over HTTP is a stranger's: it may read only files under the
configured data roots (``LOOPML_DATA_ROOTS``) and connect only to databases
configured by name (``LOOPML_DATA_SOURCES``), so credentials never travel in
specs. The same :class:`DataPolicy` is applied where the spec is received (the
API, which never reads data) and where it runs (the worker), so neither a
peek nor a run can step outside it.

Refusals never include anything read from the file: the path is checked as a
string and as a resolved real path, never opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.core.errors import AccessError

if TYPE_CHECKING:
    from loopml.core.settings import Settings

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
HTTP = "http"
LOCAL = "local"


def is_url(path: str) -> bool:
    """Whether fsspec would treat ``path`` as a URL or a chain (``s3://``, ``zip::``, ``file:``).

    A Windows drive letter (``C:``) is a path, not a scheme.
    """
    if "::" in path or "://" in path:
        return True
    return bool(_SCHEME.match(path)) and not re.match(r"^[A-Za-z]:[\\/]", path)


@dataclass(frozen=True)
class DataPolicy:
    """The files and databases a job may use; ``restricted`` for specs that came over HTTP."""

    restricted: bool = False
    roots: tuple[Path, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, restricted: bool = False) -> DataPolicy:
        """The policy of ``settings``; ``LOOPML_RESTRICT_DATA`` restricts every job."""
        return cls(
            restricted=restricted or settings.restrict_data,
            roots=tuple(Path(os.path.realpath(root.expanduser())) for root in settings.data_roots),
            sources=dict(settings.data_sources),
        )

    def local_file(self, path: str, base_dir: Path | None) -> str:
        """The path to read for ``path``, or an AccessError saying why it may not be read.

        Relative paths need the spec's folder (``base_dir``); without one they are
        refused rather than resolved against whatever directory the process runs in.
        A restricted policy allows only local files whose real path (symlinks and
        ``..`` resolved) is under a data root, and returns that real path.
        """
        if is_url(path):
            if self.restricted:
                raise AccessError(
                    f"{path!r} is a URL; specs submitted over HTTP may read only local files "
                    f"under the data roots ({self.roots_text()})"
                )
            return path
        if "\0" in path or (base_dir is not None and "\0" in str(base_dir)):
            raise AccessError(
                f"data path {path!r} (or the spec's folder) holds a NUL character; no file "
                "name does"
            )
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            if base_dir is None or not base_dir.is_absolute():
                raise AccessError(
                    f"relative data path {path!r} needs the spec's folder to resolve against, "
                    "and this spec came without one (or with a relative `source`); give an "
                    "absolute data path, or the spec's absolute `source` path"
                )
            candidate = base_dir / candidate
        if not self.restricted:
            return str(candidate.resolve())
        real = Path(os.path.realpath(candidate))
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise AccessError(
                f"data path {path!r} is not under the data roots ({self.roots_text()}); specs "
                "submitted over HTTP may read only there (LOOPML_DATA_ROOTS)"
            )
        return str(real)

    def sql_url(self, url: str | None, source: str | None) -> str:
        """The SQLAlchemy URL to connect to: the named source's, or ``url`` when allowed."""
        if source is not None:
            if source not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none configured"
                raise AccessError(
                    f"unknown data source {source!r}; configured (LOOPML_DATA_SOURCES): {known}"
                )
            return self.sources[source]
        if self.restricted:
            known = ", ".join(sorted(self.sources)) or "none configured"
            raise AccessError(
                "specs submitted over HTTP may not give a database URL; name a configured "
                f"source instead (`source`, LOOPML_DATA_SOURCES: {known})"
            )
        if not url:
            raise AccessError("give `source` (a configured database) or `url`")
        return url

    def roots_text(self) -> str:
        return ", ".join(str(root) for root in self.roots) or "none configured"


# the password runs to the last "@" of the URL (SQLAlchemy reads it so): it may hold "/", ":", "@"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'?#]*:)[^\s\"']+(?=@)")
_SECRET_VALUE = re.compile(
    r"(?P<head>[\"']?(?P<key>[A-Za-z0-9_\-]*(?:password|passwd|pwd|secret|token|key|credential)"
    r"[A-Za-z0-9_\-]*)[\"']?[ \t]*[:=][ \t]*)"
    # an unquoted (YAML) value runs to the end of its line or flow item, spaces included
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s,}\]\[{#](?:[^\n,}\]\[{#]*[^\s,}\]\[{#])?)",
    re.IGNORECASE,
)
MASK = "***"


def mask_secrets(text: str | None) -> str | None:
    """``text`` with passwords in URLs and values of secret-named keys replaced by ``***``.

    Works on the text as written (JSON, JSON5 or YAML), so what is shown keeps
    its layout; it masks too much rather than too little (any key containing
    ``key``, ``token``, ``secret``, ``password`` ...).
    """
    if not text:
        return text
    masked = _URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}", text)

    def value(match: re.Match[str]) -> str:
        raw = match["value"]
        quote = raw[0] if raw[0] in "\"'" else ""
        return f"{match['head']}{quote}{MASK}{quote}"

    return _SECRET_VALUE.sub(value, masked)


__all__ = ["HTTP", "LOCAL", "MASK", "DataPolicy", "is_url", "mask_secrets"]
