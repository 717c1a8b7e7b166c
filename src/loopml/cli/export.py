"""``loopml export``: a registered version as an ONNX file, for the edge and for fast serving."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.output import Format, emit, say


class ExportFormat(StrEnum):
    onnx = "onnx"


def export(
    model: Annotated[
        str,
        typer.Argument(help="NAME@ALIAS, NAME/VERSION or a models:/ URI.", show_default=False),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            help="The file to write (e.g. model.onnx); an existing one needs --overwrite.",
            show_default=False,
        ),
    ],
    export_format: Annotated[
        ExportFormat, typer.Option("--format", help="The export format.", case_sensitive=False)
    ] = ExportFormat.onnx,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Log the file on the version (artifact, sha256 tag); --no-record only writes it.",
        ),
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --output if it exists (whole, at the end).")
    ] = False,
    format: Annotated[
        Format,
        typer.Option(
            "-o",
            help="table (for people) or json (for scripts; the shape is in docs/cli.md).",
            case_sensitive=False,
        ),
    ] = Format.table,
) -> None:
    """Convert a version to ONNX, check parity on its reference rows, write it, log it."""
    from loopml.cli.common import err, fail, out, settings
    from loopml.cli.quiet import quiet_mlflow
    from loopml.cli.shapes import ExportOutput
    from loopml.core.errors import LoopmlError
    from loopml.export.version import export_version
    from loopml.registry.reference import ModelReference

    config = settings()
    quiet_mlflow()
    try:
        ref = ModelReference.parse(model)
        _check_output(output, overwrite)  # before seconds of conversion, not after
        if err.is_terminal:  # progress for a person; a log gets the result or one error line
            say(err, f"exporting {ref} to {export_format.value} ...")
        done = export_version(config, ref, output, record=record)
    except LoopmlError as error:
        fail(error)
    if format is Format.json:
        emit(ExportOutput.model_validate(done.as_dict()))
        return
    parity = done.parity
    say(out, f"exported {done.name} version {done.version} to {output}")
    say(out, f"  size            {done.size:,} bytes")
    say(out, f"  sha256          {done.sha256}")
    say(
        out,
        f"  one-row latency p50 {done.latency_ms['p50']:.3f} ms, "
        f"p99 {done.latency_ms['p99']:.3f} ms (onnxruntime, one thread)",
    )
    say(
        out,
        f"  parity          max abs diff {parity.max_abs_diff:.3g} on {parity.rows} reference "
        f"rows (allowed {parity.tolerance:g}), labels identical",
    )
    if done.dropped:
        say(out, f"  dropped         {', '.join(done.dropped)} (training only)")
    if done.artifact_uri:
        say(out, f"  logged          {done.artifact_uri}")


def _check_output(output: Path, overwrite: bool) -> None:
    """Refuse an --output that could not be written, or would replace a file unasked."""
    from loopml.core.errors import InputFileError

    target = output.expanduser()
    if target.is_dir():
        raise InputFileError(f"--output {output} is a folder; give a file name such as model.onnx")
    if not target.parent.exists():
        raise InputFileError(f"--output {output}: the folder {target.parent} does not exist")
    if not target.parent.is_dir():
        raise InputFileError(f"--output {output}: {target.parent} is a file, not a folder")
    if target.exists() and not overwrite:
        raise InputFileError(
            f"--output {output} exists; pass --overwrite to replace it, or choose another name"
        )
