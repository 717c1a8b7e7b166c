"""What a run needs recorded to be run again: a hash of its code and of its environment.

Lives in ``core`` because the engine records it and a step that runs code
from outside loopml (an MLproject) must be able to hash its folder the same
way: :func:`code_manifest` takes the extra folders or files. Both records are
plain JSON (a manifest of per-file SHA-256s, a map of distributions to
versions) so ``loopml runs reproduce`` can name each file and distribution
that changed, not only say that a hash differs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_SKIPPED_DIRS = {"__pycache__", ".git", ".venv", "mlruns", ".mypy_cache", ".pytest_cache"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}
MAX_FILES = 5000
"""A folder with more files than this is hashed up to it, and the manifest says so."""


def digest(record: Any) -> str:
    """SHA-256 of a JSON record with sorted keys: the same record, the same hash."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_HASHES: dict[tuple[str, int, int], str] = {}
_ENVIRONMENT: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}


def file_hash(path: Path) -> str:
    """SHA-256 of a file; kept per process by (path, mtime, size), so a run re-reads only
    files that changed since the last run in this process (a worker runs many)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = _HASHES.get(key)
    if found is None:
        sha = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        found = _HASHES[key] = sha.hexdigest()
    return found


def _files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if any(part in _SKIPPED_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES:
            yield path


def loopml_package() -> Path:
    import loopml

    return Path(loopml.__file__).resolve().parent


def code_manifest(extra_paths: Iterable[Path | str] = ()) -> dict[str, str]:
    """Per-file SHA-256 of loopml's package files and of each extra file or folder.

    Keys are ``loopml/<relative path>`` for the package and ``<absolute
    root>::<relative path>`` for the extras (plugin step modules, an MLproject's
    sources), so two runs from different checkouts of the same code compare
    equal while different extra folders never collide.
    """
    manifest: dict[str, str] = {}
    package = loopml_package()
    for path in _files(package):
        manifest[f"loopml/{path.relative_to(package).as_posix()}"] = file_hash(path)
    for extra in sorted({str(Path(p).resolve()) for p in extra_paths}):
        root = Path(extra)
        if not root.exists():
            manifest[f"{root}::"] = "missing"
            continue
        for count, path in enumerate(_files(root)):
            if count >= MAX_FILES:
                manifest[f"{root}::..."] = f"truncated at {MAX_FILES} files"
                break
            relative = path.name if root.is_file() else path.relative_to(root).as_posix()
            manifest[f"{root}::{relative}"] = file_hash(path)
    return manifest


def resolved_environment() -> dict[str, Any]:
    """Every installed distribution with its version, plus Python and the platform.

    Kept per process while no folder on ``sys.path`` changes (installing or
    removing a distribution changes its site-packages folder's mtime).
    """
    key = tuple((entry, _mtime(entry)) for entry in sys.path)
    cached = _ENVIRONMENT.get(key)
    if cached is None:
        _ENVIRONMENT.clear()
        cached = _ENVIRONMENT[key] = _read_environment()
    copied: dict[str, Any] = json.loads(json.dumps(cached))  # callers may change theirs
    return copied


def _mtime(entry: str) -> int:
    try:
        return Path(entry or ".").stat().st_mtime_ns
    except OSError:
        return -1


def _read_environment() -> dict[str, Any]:
    from importlib import metadata

    distributions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            distributions[_normalize(str(name))] = str(dist.version)
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "distributions": dict(sorted(distributions.items())),
    }


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def mapping_diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[dict[str, str]]:
    """Each key added, removed or changed between two manifests, as ``{name, was, now}``."""
    changes: list[dict[str, str]] = []
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        if was != now:
            changes.append({"name": key, "was": was or "(absent)", "now": now or "(absent)"})
    return changes


def environment_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    """Python, platform and every distribution that differs between two environments."""
    changes = [
        {"name": key, "was": str(before.get(key, "(absent)")), "now": str(after.get(key))}
        for key in ("python", "implementation", "platform", "machine")
        if before.get(key) != after.get(key)
    ]
    return changes + mapping_diff(before.get("distributions", {}), after.get("distributions", {}))
