"""A step that downloads training data from Kaggle with the official client.

Credentials come the way the Kaggle client reads them: ``KAGGLE_USERNAME`` and
``KAGGLE_KEY``, ``KAGGLE_API_TOKEN``, or ``~/.kaggle/kaggle.json``. Downloads
are cached under ``$LOOPML_HOME/datasets/kaggle`` so a re-run does not fetch
the same file again.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from loopml.core.context import StepContext
from loopml.core.errors import DataError
from loopml.steps.base import StepParams, step
from loopml.steps.data import LOADER_OUTPUTS
from loopml.steps.frames import infer_format, read_table, store_frame


class KaggleSource(StepParams):
    """One file of a Kaggle dataset."""

    kaggle_dataset_name: str = Field(description="owner/dataset, e.g. mlg-ulb/creditcardfraud.")
    training_file_name: str = Field(description="The file inside the dataset, e.g. creditcard.csv.")
    read_options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the pandas reader."
    )
    frame: str = Field(default="train", description="Name the loaded frame gets.")

    @field_validator("kaggle_dataset_name")
    @classmethod
    def _owner_slash_name(cls, value: str) -> str:
        owner, _, name = value.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError("must be 'owner/dataset', e.g. 'mlg-ulb/creditcardfraud'")
        return value


_CREDENTIALS_HELP = (
    "Kaggle credentials are missing: set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN), "
    "or put kaggle.json in ~/.kaggle; or swap this step for load_data_from_file with a local copy"
)


def kaggle_client() -> Any:
    """An authenticated ``KaggleApi``, or a DataError saying how to provide credentials.

    Importing the client package prints help and may call ``exit`` when no
    credentials exist; both are contained here.
    """
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise DataError(_CREDENTIALS_HELP) from None
    except ImportError as exc:
        raise DataError(f"the Kaggle client is not installed: {exc}") from exc
    return api


def download(api: Any, dataset: str, file_name: str, folder: Path) -> Path:
    """Fetch ``file_name`` of ``dataset`` into ``folder``; the path of what arrived."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_file(dataset, file_name, path=str(folder), quiet=True)
    except Exception as exc:  # the client raises requests, urllib3 and HTTP errors alike
        raise DataError(
            f"could not download {file_name!r} of Kaggle dataset {dataset!r}: "
            f"{type(exc).__name__}: {exc}. Check the names and the network, or use "
            "load_data_from_file with a local copy"
        ) from exc
    for candidate in (folder / file_name, folder / f"{file_name}.zip"):
        if candidate.exists():
            return candidate
    arrived = sorted(path.name for path in folder.iterdir())
    raise DataError(
        f"Kaggle reported {file_name!r} of {dataset!r} downloaded, but {folder} holds only "
        f"{', '.join(arrived) or 'nothing'}"
    )


@step("load_data_from_kaggle", params=KaggleSource, needs_network=True, outputs=LOADER_OUTPUTS)
def load_data_from_kaggle(context: StepContext, params: KaggleSource) -> None:
    """Download one file of a Kaggle dataset (official client) and load it."""
    folder = context.settings.home / "datasets" / "kaggle" / params.kaggle_dataset_name
    context.progress(
        f"downloading {params.kaggle_dataset_name}/{params.training_file_name}", 0, None
    )
    path = download(kaggle_client(), params.kaggle_dataset_name, params.training_file_name, folder)
    frame = read_table(str(path), infer_format(str(path)), dict(params.read_options))
    store_frame(context, params.frame, frame, f"kaggle:{params.kaggle_dataset_name}/{path.name}")
