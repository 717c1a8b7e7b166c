"""One home for configuration.

Every knob comes from a ``LOOPML_*`` environment variable or an optional
settings file, is read once by :func:`get_settings`, and is passed down from
there; no other module reads ``os.environ``. The variable names are a public
contract: operators and scripts depend on them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_REMOTE_TRACKING_SCHEMES = frozenset({"http", "https", "databricks"})


class Settings(BaseSettings):
    """Where loopml keeps its state and which services it talks to.

    With nothing set, everything lives under ``./.loopml``: SQLite for MLflow
    and for the metadata store, local files for artifacts. Point the URLs at
    PostgreSQL, a tracking server or RabbitMQ to scale out with the same code.
    """

    model_config = SettingsConfigDict(
        env_prefix="LOOPML_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
        # settings hold credentials (database and broker URLs, API keys, data sources):
        # an error names the setting and what is wrong, never echoes its value
        hide_input_in_errors=True,
    )

    home: Path = Field(default=Path(".loopml"), description="Root for embedded state.")
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default sqlite:///$LOOPML_HOME/mlflow.db.",
    )
    artifact_root: str | None = Field(
        default=None,
        description=(
            "Where new MLflow experiments keep artifacts (a path, file:// or s3:// URI). Default: "
            "$LOOPML_HOME/artifacts with a local tracking store; with a tracking server "
            "(http/https) the server chooses (its --default-artifact-root or artifact proxy)."
        ),
    )
    database_url: str | None = Field(
        default=None,
        description="Metadata and prediction store; default sqlite:///$LOOPML_HOME/loopml.db.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker; unset means the embedded broker (no server).",
    )
    queue_prefix: str = Field(
        default="",
        description=(
            "Prefix of every queue and exchange name (training, inference, dead letters), so "
            "several deployments or test runs can share one RabbitMQ."
        ),
    )
    queue_type: Literal["quorum", "classic"] = Field(
        default="quorum",
        description="RabbitMQ queue type of the training and inference queues.",
    )
    training_time_limit: int = Field(
        default=6 * 3600,
        gt=0,
        description=(
            "Seconds a training job may run before it is stopped and marked failed; the worker "
            "kills it a grace period later if it does not stop."
        ),
    )
    consumer_timeout: int | None = Field(
        default=None,
        gt=0,
        description=(
            "RabbitMQ x-consumer-timeout of the work queues, in seconds; must exceed the "
            "training job's hard limit. Default: the hard limit plus 15 minutes."
        ),
    )
    tuning_heartbeat: int = Field(
        default=10,
        gt=0,
        description="Seconds between heartbeats of a distributed tuning trial (Optuna).",
    )
    tuning_grace_period: int = Field(
        default=60,
        gt=0,
        description=(
            "Seconds without a heartbeat after which a distributed trial counts as lost: it is "
            "failed and retried with the same parameters."
        ),
    )
    max_deliveries: int = Field(
        default=3,
        ge=1,
        description="A job delivered more often than this is failed and dead-lettered.",
    )
    trust_registry_models: bool = Field(
        default=True,
        description=(
            "Load models from the configured registry even though loading runs code from the "
            "model file (MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION). Turn off for a registry "
            "others can write to."
        ),
    )
    trusted_registrars: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Registrars (the MLflow user_id of a version, else the user of the run that logged "
            "it) whose versions load without a loopml trust record, comma-separated; `*` "
            "trusts every version registered outside loopml. Artifacts changed since a "
            "recorded registration are refused regardless (docs/security.md, Model trust)."
        ),
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="Monitoring alerts are POSTed here as JSON (and always logged).",
    )
    console_url: str | None = Field(
        default=None,
        description=(
            "Address people reach the review console at (e.g. https://loopml.example.com/ui); "
            "approval notices link to it. Default http://127.0.0.1:8100/ui (`loopml api`)."
        ),
    )
    smtp_host: str | None = Field(
        default=None,
        description="Mail server for approval notices; unset: no email (the webhook still fires).",
    )
    smtp_port: int = Field(default=25, gt=0, lt=65536, description="Mail server port.")
    smtp_from: str = Field(default="loopml@localhost", description="Sender of approval notices.")
    smtp_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Recipients of approval notices, comma-separated."
    )
    smtp_user: str | None = Field(default=None, description="SMTP login, when the server asks.")
    smtp_password: str | None = Field(default=None, description="SMTP password (never logged).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP link with STARTTLS.")
    smtp_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds before an unanswering mail server is given up."
    )
    monitor_policy_file: Path | None = Field(
        default=None,
        description="YAML/JSON of monitoring thresholds per model name (`default`: the rest).",
    )
    monitor_lease_s: float = Field(
        default=60.0,
        ge=1,
        description=(
            "Seconds a monitor's lease on a model lasts unless renewed (every third of it): "
            "only the holder runs passes; when it dies, another replica takes over after this."
        ),
    )
    serve_model: str | None = Field(
        default=None,
        description=(
            "What `loopml serve` serves: NAME@alias, NAME/version or a models:/ URI "
            "(the --model flag sets it)."
        ),
    )
    serve_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "API keys `loopml serve` accepts as `Authorization: Bearer <key>`, comma-separated; "
            "empty means no auth. Health endpoints never need one."
        ),
    )
    serve_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description=(
            "Largest request body `loopml serve` reads; a larger one is answered 413 before it "
            "is parsed (declared or counted as it streams)."
        ),
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "API keys `loopml api` accepts as `Authorization: Bearer <key>`, comma-separated. "
            "Without one the API refuses to start unless told --no-auth on a loopback address."
        ),
    )
    api_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Host header values `loopml api` accepts besides the bind address and "
            "localhost/127.0.0.1/[::1] (with and without the port), comma-separated; other "
            "Hosts are answered 400."
        ),
    )
    api_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Largest request body `loopml api` reads; a larger one is answered 413.",
    )
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders (comma-separated) under which specs submitted over HTTP may read data "
            "files; resolved to real paths. Empty: such specs may read no file at all."
        ),
    )
    batch_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Folders (comma-separated) under which batch jobs submitted over HTTP (POST /batches) "
            "may read their input and write their output; resolved to real paths. Default: "
            "$LOOPML_HOME/data."
        ),
    )
    data_sources: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description=(
            "Databases load_data_from_sql may name as `source`, so credentials stay out of "
            'specs: JSON `{"warehouse": "postgresql+psycopg://..."}` or `name=url,name=url`. '
            "Specs submitted over HTTP may connect to these only."
        ),
    )
    restrict_data: bool = Field(
        default=False,
        description=(
            "Apply the rules for specs submitted over HTTP (data roots, named sources) to every "
            "job this process runs, also those from `loopml submit` and `loopml run`."
        ),
    )
    serve_runtime: Literal["pyfunc", "onnx"] = Field(
        default="pyfunc",
        description=(
            "What scores in `loopml serve`: the pipeline itself (pyfunc) or its parity-checked "
            "ONNX export run by onnxruntime (onnx; needs the onnx extra)."
        ),
    )
    serve_watch_interval_s: float = Field(
        default=10.0,
        gt=0,
        description="How often `loopml serve` checks whether the served alias moved.",
    )
    serve_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description=(
            "Longest a request waits for concurrent ones to share one predict call "
            "(adaptive micro-batching; a lone request never waits)."
        ),
    )
    serve_max_batch_rows: int = Field(
        default=2048, ge=1, description="Most rows scored in one micro-batched predict call."
    )
    serve_log_flush_s: float = Field(
        default=0.25,
        gt=0,
        description="How often the prediction journal's shipper moves journaled rows to the store.",
    )
    serve_log_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description=(
            "Bound on each prediction-log database call (connect, statement, socket); a store "
            "that does not answer within it counts as down."
        ),
    )
    serve_log_drain_s: float = Field(
        default=5.0,
        ge=0,
        description=(
            "On shutdown, how long the server keeps shipping its journal; what is left stays "
            "journaled for the next server on the same spool dir."
        ),
    )
    serve_label_grace_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "How long feedback for a prediction id the log does not hold (yet) is retried, "
            "counted from the first time the store answered without it, before it is set aside "
            "as unknown (never stored)."
        ),
    )
    feature_repo: str | None = Field(
        default=None,
        description=(
            "Feast repo folder that serving, batch scoring and `loopml features` use instead of "
            "the one a version recorded at training (e.g. the same repo mounted elsewhere)."
        ),
    )
    feature_stale_after_s: float = Field(
        default=86_400.0,
        description=(
            "The monitor alerts when the online store's newest materialized feature data is "
            "older than this (seconds)."
        ),
    )
    serve_journal: bool = Field(
        default=True,
        description=(
            "Journal and log every prediction. Off only to measure the journal's cost "
            "(bench/serving --no-journal): predictions are then not logged at all."
        ),
    )
    serve_spool_dir: Path | None = Field(
        default=None,
        description=(
            "The prediction journal's folder (segments waiting to be shipped to the store); "
            "default $LOOPML_HOME/spool."
        ),
    )
    settings_file: Path | None = Field(
        default=None,
        description="Optional YAML or JSON file of settings; the environment wins over it.",
    )

    @field_validator(
        "serve_api_keys",
        "api_keys",
        "api_allowed_hosts",
        "data_roots",
        "batch_roots",
        "trusted_registrars",
        "smtp_to",
        mode="before",
    )
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("data_sources", mode="before")
    @classmethod
    def _named_urls(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            import json

            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValueError(f"LOOPML_DATA_SOURCES is not valid JSON: {exc}") from None
        sources: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, url = item.partition("=")
            if not sep or not name.strip() or not url.strip():
                raise ValueError(
                    "LOOPML_DATA_SOURCES entries are name=url, comma-separated "
                    '(or a JSON object {"name": "url"}); found an entry without name=url'
                )
            sources[name.strip()] = url.strip()
        return sources

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.tracking_uri is None:
            self.tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if self.artifact_root is None and not self.tracking_is_remote:
            self.artifact_root = self._default_artifact_root
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'loopml.db'}"
        if self.consumer_timeout is None:
            self.consumer_timeout = self.training_hard_limit + 15 * 60
        if self.consumer_timeout <= self.training_hard_limit:
            raise ValueError(
                f"LOOPML_CONSUMER_TIMEOUT={self.consumer_timeout} must exceed the training "
                f"job's hard limit ({self.training_hard_limit} s, LOOPML_TRAINING_TIME_LIMIT plus "
                "grace); otherwise RabbitMQ redelivers long jobs again and again"
            )
        if self.serve_spool_dir is None:
            self.serve_spool_dir = self.home / "spool"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SettingsFileSource(settings_cls, env_settings))

    @property
    def tracking(self) -> str:
        """The tracking URI, never ``None`` after validation."""
        assert self.tracking_uri is not None
        return self.tracking_uri

    @property
    def database(self) -> str:
        """The metadata store URL, never ``None`` after validation."""
        assert self.database_url is not None
        return self.database_url

    @property
    def tracking_is_remote(self) -> bool:
        """Whether MLflow is reached through a tracking server rather than a store it opens.

        A server is shared by machines that do not share a disk, so it chooses where
        artifacts go unless ``LOOPML_ARTIFACT_ROOT`` says otherwise.
        """
        scheme = (self.tracking_uri or "").split(":", 1)[0].lower()
        return scheme in _REMOTE_TRACKING_SCHEMES

    @property
    def artifacts(self) -> str | None:
        """Where new experiments keep artifacts; ``None``: the tracking server decides."""
        return self.artifact_root

    @property
    def _default_artifact_root(self) -> str:
        return (self.home / "artifacts").as_uri()

    @property
    def broker(self) -> str:
        """The Celery broker URL: RabbitMQ when set, else the embedded SQLite broker."""
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{self.home / 'broker.db'}"

    @property
    def training_hard_limit(self) -> int:
        """Seconds after which a training job's process is killed (the soft limit plus grace)."""
        return self.training_time_limit + min(60, max(10, self.training_time_limit // 10))

    @property
    def batch_folders(self) -> list[Path]:
        """Where HTTP batch jobs may read and write: ``LOOPML_BATCH_ROOTS``, else ``$HOME/data``."""
        return list(self.batch_roots) or [self.home / "data"]

    @property
    def spool_dir(self) -> Path:
        """Where the prediction log spools while its database is down, never ``None``."""
        assert self.serve_spool_dir is not None
        return self.serve_spool_dir

    def ensure_home(self) -> Path:
        """Create ``$LOOPML_HOME`` when something is about to be written there."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.artifact_root == self._default_artifact_root:
            (self.home / "artifacts").mkdir(exist_ok=True)
        return self.home


class _SettingsFileSource(PydanticBaseSettingsSource):
    """Reads ``LOOPML_SETTINGS_FILE`` (YAML or JSON), lowest priority under the environment.

    Keys are the field names without the prefix (``home``, ``tracking_uri``...).
    """

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self._env().get("settings_file")
        if not path:
            return {}
        import yaml

        from loopml.core.errors import ConfigError

        file = Path(path)
        try:
            data = yaml.safe_load(file.read_text())
        except OSError as exc:
            raise ConfigError(f"LOOPML_SETTINGS_FILE={path}: cannot read it ({exc}).") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"LOOPML_SETTINGS_FILE={path}: not valid YAML/JSON ({exc}).") from exc
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"LOOPML_SETTINGS_FILE={path}: expected a mapping of setting names to values, "
                f"found {type(data).__name__}."
            )
        known = set(self.settings_cls.model_fields)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"LOOPML_SETTINGS_FILE={path}: unknown setting(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(known))}."
            )
        return dict(data)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
