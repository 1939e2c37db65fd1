"""Settings: environment variables with prefix `ORDERFLOW_`, nested with `__`.

The names and defaults in the contract table are fixed; everything else here is an addition
with a default that suits a real cluster. `load_settings()` turns any problem into one
`ConfigError` line that names the variable, which the command line prints before exiting 2.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

ENV_PREFIX = "ORDERFLOW_"
ENV_NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """A setting is missing or wrong. The message is one line and names the variable."""


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "orderflow"
    client_id: str = "orderflow"
    # The embedded broker holds a group join for about half the session timeout, so tests
    # keep it short; real clusters keep the usual default.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # Idempotent producing needs InitProducerId, which the embedded broker lacks.
    enable_idempotence: bool = True
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    # Replication of the tracking topic when orderflow creates it.
    tracking_replication_factor: int = Field(default=3, ge=1)
    # Input records larger than this go to the dead-letter topic unread.
    max_record_bytes: int = Field(default=1_048_576, ge=1024)
    max_batch_records: int = Field(default=500, ge=1)


class TopicSettings(BaseModel):
    orders_created: str = Field(default="orders.created", min_length=1)
    status: str = Field(default="orders.status", min_length=1)
    print_files_ready: str = Field(default="orders.print-files-ready", min_length=1)
    dead_letter: str = Field(default="orders.created.dlq", min_length=1)
    tracking: str = Field(default="orderflow.tracking", min_length=1)


class VendorSettings(BaseModel):
    enabled: bool = True
    base_url: str
    max_concurrency: int = Field(default=32, ge=1, le=1024)
    # Requests per second started against this vendor (0: no limit beyond concurrency).
    rate_limit_per_s: float = Field(default=0.0, ge=0)
    request_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def missing_credentials(self) -> list[str]:
        return []


class ZakekeSettings(VendorSettings):
    base_url: str = "https://api.zakeke.com"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # Registration tokens are per customer or visitor code; this bounds how many are cached.
    token_cache_size: int = Field(default=1024, ge=1)

    def missing_credentials(self) -> list[str]:
        return [n for n in ("client_id", "client_secret") if not _present(getattr(self, n))]


class SmakeSettings(VendorSettings):
    base_url: str = "https://api.smake.io/v2"
    api_key: SecretStr | None = None
    default_shipping_method: str = "standard"
    default_payment_method: str = "invoice"

    def missing_credentials(self) -> list[str]:
        return [] if _present(self.api_key) else ["api_key"]


class ReevooSettings(VendorSettings):
    base_url: str = "https://api.reevoocloud.com"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    trkref: str | None = None
    # Comma-separated sales channels whose orders go to Reevoo; unset or "all": every order.
    sales_channels: Annotated[frozenset[str] | None, NoDecode] = None

    @field_validator("sales_channels", mode="before")
    @classmethod
    def _parse_channels(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = frozenset(part.strip() for part in value.split(",") if part.strip())
            return None if not names or names == {"all"} else names
        return value

    def missing_credentials(self) -> list[str]:
        return [n for n in ("api_key", "api_secret", "trkref") if not _present(getattr(self, n))]


class PollSettings(BaseModel):
    initial_interval_s: float = Field(default=5.0, gt=0)
    max_interval_s: float = Field(default=300.0, gt=0)
    deadline_s: float = Field(default=172_800.0, gt=0)


class HttpSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)


class LogSettings(BaseModel):
    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class TrackingSettings(BaseModel):
    # How long a finished pair is remembered, so a re-delivered input creates no second job.
    terminal_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)


class HealthSettings(BaseModel):
    # /healthz answers 503 when the intake or the scheduler has not turned over for this long.
    stall_after_s: float = Field(default=120.0, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    zakeke: ZakekeSettings = ZakekeSettings()
    smake: SmakeSettings = SmakeSettings()
    reevoo: ReevooSettings = ReevooSettings()
    poll: PollSettings = PollSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()
    tracking: TrackingSettings = TrackingSettings()
    health: HealthSettings = HealthSettings()
    shutdown_grace_s: float = Field(default=25.0, gt=0)

    def vendor_settings(self) -> dict[str, VendorSettings]:
        return {"zakeke": self.zakeke, "smake": self.smake, "reevoo": self.reevoo}


def _present(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value and value.strip())


def env_name(*path: str | int) -> str:
    """The environment variable behind a settings path: ("zakeke", "client_id") ->
    ORDERFLOW_ZAKEKE__CLIENT_ID."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p).upper() for p in path)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (and `overrides`, used by the sandbox).

    Raises ConfigError with one line that names the first offending variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [p for p in error["loc"] if isinstance(p, str | int)]
            given = error.get("input")
            shown = "" if isinstance(given, dict) or given is None else f" (got {str(given)[:60]!r})"
            problems.append(f"{env_name(*loc)}: {error['msg']}{shown}")
        raise ConfigError("; ".join(problems)) from None
    except SettingsError as exc:
        # A whole group given as JSON (ORDERFLOW_POLL='{...}') that does not parse: the
        # library names the field only in its message.
        field = re.search(r'field "([^"]+)"', str(exc))
        where = env_name(field.group(1)) if field else f"{ENV_PREFIX}*"
        raise ConfigError(f"{where}: unreadable value ({exc.__cause__ or exc})") from None
    for vendor, vendor_settings in settings.vendor_settings().items():
        if vendor_settings.enabled:
            for name in vendor_settings.missing_credentials():
                raise ConfigError(
                    f"{env_name(vendor, name)} is required while {env_name(vendor, 'enabled')} is true"
                )
    if settings.poll.max_interval_s < settings.poll.initial_interval_s:
        raise ConfigError(
            f"{env_name('poll', 'max_interval_s')} must not be below "
            f"{env_name('poll', 'initial_interval_s')}"
        )
    return settings
