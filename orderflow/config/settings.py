"""Settings: environment variables with prefix `ORDERFLOW_`, nested with `__`.

The names and defaults in the contract table are fixed; everything else here is an addition
with a default that suits a real cluster. `load_settings()` turns any problem into one
`ConfigError` line that names the variable, which the command line prints before exiting 2.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

ENV_PREFIX = "ORDERFLOW_"
ENV_NESTED_DELIMITER = "__"


class ConfigError(Exception):
    """A setting is missing or wrong. The message is one line and names the variable."""


def _stripped(value: Any) -> Any:
    """A credential as it is used: without the white space around it (a Secret mounted from
    a file usually ends in a newline, and sent with it every call failed with a misleading
    error). Only white space is no credential at all, and is refused."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if value and not stripped:
        raise ValueError("is only white space")
    return stripped or None


# Credentials and ids sent to a vendor or a broker: stripped where they are read, so every
# use sees the same value the "is it set" check saw.
Secret = Annotated[SecretStr | None, BeforeValidator(_stripped)]
Credential = Annotated[str | None, BeforeValidator(_stripped)]


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "localhost:9092"
    group_id: str = "orderflow"
    client_id: str = "orderflow"
    # The embedded broker holds a group join for about half the session timeout, so tests
    # keep it short; real clusters keep the usual default.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    # Static membership (KIP-345): a replica that comes back under the same id (a container
    # restarted in its pod, which keeps the pod's name) takes its partitions back without a
    # rebalance of the group. In Kubernetes, the pod's name (deploy/kubernetes). Unset: none.
    group_instance_id: str | None = Field(default=None, min_length=1, max_length=249)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # Idempotent producing needs InitProducerId, which the embedded broker lacks.
    enable_idempotence: bool = True
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: Credential = None
    sasl_password: Secret = None
    ssl_cafile: str | None = None
    # Replication of the tracking topic when orderflow creates it.
    tracking_replication_factor: int = Field(default=3, ge=1)
    # Input records larger than this go to the dead-letter topic unread. Below the brokers'
    # limit (next) by room for the dead-letter headers, so a record refused for its size
    # can still be dead-lettered whole.
    max_record_bytes: int = Field(default=1_000_000, ge=1024)
    # The largest record the brokers accept (Kafka's `message.max.bytes`, whose default
    # this is; or the topics' `max.message.bytes`). A dead letter larger than this is
    # written without its value (the input topic still holds it), and an order whose
    # tracking record would be larger is dead-lettered as too_large: a write the broker
    # refuses would otherwise be retried forever.
    max_message_bytes: int = Field(default=1_048_588, ge=16_384)
    max_batch_records: int = Field(default=500, ge=1)
    # At start-up, how long to keep trying brokers that cannot be reached before giving up
    # (exit 2). Meanwhile /healthz answers 200 and /readyz 503.
    startup_timeout_s: float = Field(default=300.0, gt=0)


class TopicSettings(BaseModel):
    orders_created: str = Field(default="orders.created", min_length=1)
    status: str = Field(default="orders.status", min_length=1)
    print_files_ready: str = Field(default="orders.print-files-ready", min_length=1)
    dead_letter: str = Field(default="orders.created.dlq", min_length=1)
    tracking: str = Field(default="orderflow.tracking", min_length=1)
    # Operator commands and webhook deliveries for every replica (contracts/control.py).
    control: str = Field(default="orderflow.control", min_length=1)


class VendorSettings(BaseModel):
    enabled: bool = True
    base_url: str
    max_concurrency: int = Field(default=32, ge=1, le=1024)
    # Requests per second started against this vendor (0: no limit beyond concurrency).
    rate_limit_per_s: float = Field(default=0.0, ge=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    # An answer larger than this (after decompression) is not read into memory: it counts
    # as a transient error. 0.3 MiB of gzip once became 300 MiB in a second.
    max_answer_bytes: int = Field(default=1_048_576, ge=1024)
    # This vendor's polling deadline, in place of ORDERFLOW_POLL__DEADLINE_S (unset: that).
    deadline_s: float | None = Field(default=None, gt=0)

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
    client_id: Credential = None
    client_secret: Secret = None
    # Registration tokens are per customer or visitor code; this bounds how many are cached.
    token_cache_size: int = Field(default=1024, ge=1)
    # After a registration whose answer was lost, Zakeke's reads can answer 404 for a while:
    # the order is registered again only once it has stayed absent this long.
    # 30 s: well past the few seconds of lag seen, and paid only after a lost answer.
    register_settle_s: float = Field(default=30.0, ge=0)
    # Hosts besides the base URL's that print-ready files may be read from (Zakeke's CDN).
    file_hosts: Annotated[frozenset[str], NoDecode] = frozenset()
    # The currency of the account's prices (ISO 4217); unset: not checked.
    base_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    @field_validator("file_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    def missing_credentials(self) -> list[str]:
        return [n for n in ("client_id", "client_secret") if not _present(getattr(self, n))]


class SmakeSettings(VendorSettings):
    base_url: str = "https://api.smake.io/v2"
    # A production is manual work at the producer (Smake's `checking` and `preparing` are
    # people at work): days, and longer over a weekend or a holiday. Ten days before a pair
    # is given up as `timed_out` (docs/configuration.md).
    deadline_s: float | None = Field(default=10 * 24 * 3_600.0, gt=0)
    api_key: Secret = None
    default_shipping_method: str = "standard"
    default_payment_method: str = "invoice"
    # Our shipping/payment method words to the handles the Smake producer set up, written
    # `ours=theirs,ours=theirs`. Unset: the order's own words go to Smake.
    shipping_method_map: Annotated[dict[str, str] | None, NoDecode] = None
    payment_method_map: Annotated[dict[str, str] | None, NoDecode] = None
    # The token Smake signs its webhooks with; unset: POST /webhooks/smake answers 404.
    webhook_token: Secret = None
    # The webhook door (consumer/webhooks.py). Smake's deliveries are one order or shipment
    # as JSON, a few KB: 64 KiB is plenty, and bounds what an unauthenticated caller can make
    # a replica hold (the body must be read before its signature can be checked).
    webhook_max_body_bytes: int = Field(default=65_536, ge=1_024, le=1_048_576)
    # Smake waits 10 s for an answer; a body that takes longer is not a delivery.
    webhook_read_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Requests being read or written at once; past it, 503 (Smake delivers again).
    webhook_max_concurrent: int = Field(default=32, ge=1, le=4_096)
    # Up to this many due polls go to Smake as one `GET /orders?filter[id]=...` (1: each on
    # its own, as `GET /orders/{id}`). Smake pages hold at most 100.
    poll_batch_size: int = Field(default=100, ge=1, le=100)
    # The artwork hand-off (contract, "One order, one flow"): the print-ready format read
    # from Zakeke, the view of the variant the design goes on, the producer's production
    # method, and the size in mm where Zakeke's design gives none.
    artwork_format: Literal["PDF", "PNG"] = "PDF"
    artwork_view: str = Field(default="front", min_length=1)
    production_method: str = Field(default="dtg", min_length=1)
    artwork_size_mm: Annotated[tuple[int, int], NoDecode] = (250, 300)

    @field_validator("artwork_size_mm", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        if isinstance(value, str):
            width, sep, height = value.strip().lower().partition("x")
            if not sep or not width.strip().isdigit() or not height.strip().isdigit():
                raise ValueError(f"{value!r} is not WIDTHxHEIGHT in mm (e.g. 250x300)")
            size = (int(width), int(height))
            if not all(1 <= side <= 10_000 for side in size):
                raise ValueError(f"{value!r}: each side from 1 to 10000 mm")
            return size
        return value

    @field_validator("artwork_format", mode="before")
    @classmethod
    def _upper_format(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("shipping_method_map", "payment_method_map", mode="before")
    @classmethod
    def _parse_method_map(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        mapping: dict[str, str] = {}
        for pair in value.split(","):
            if not pair.strip():
                continue
            ours, sep, theirs = pair.partition("=")
            if not sep or not ours.strip() or not theirs.strip():
                raise ValueError(f"{pair.strip()!r} is not of the form ours=theirs")
            if ours.strip() in mapping:
                raise ValueError(f"{ours.strip()!r} is mapped twice")
            mapping[ours.strip()] = theirs.strip()
        return mapping or None

    @model_validator(mode="after")
    def _default_methods_are_mapped(self) -> SmakeSettings:
        # With a map set, an order naming no method gets the default: one the map does not
        # know as ours or as Smake's handle was sent unmapped, and Smake answered 422.
        for kind in ("shipping", "payment"):
            mapping = getattr(self, f"{kind}_method_map")
            default = getattr(self, f"default_{kind}_method")
            if mapping is not None and default not in mapping and default not in mapping.values():
                raise ValueError(
                    f"{env_name('smake', f'default_{kind}_method')}={default!r} is neither a "
                    f"word nor a Smake handle of {env_name('smake', f'{kind}_method_map')}: "
                    f"an order naming no {kind} method would be refused by Smake")
        return self

    def missing_credentials(self) -> list[str]:
        return [] if _present(self.api_key) else ["api_key"]


class ReevooSettings(VendorSettings):
    base_url: str = "https://api.reevoocloud.com"
    api_key: Secret = None
    api_secret: Secret = None
    trkref: Credential = None
    # Comma-separated sales channels whose orders go to Reevoo; unset or "all": every order.
    sales_channels: Annotated[frozenset[str] | None, NoDecode] = None
    # `placed`: an order goes to Reevoo at once. `fulfilled`: an order with a Smake pair goes
    # once that pair completed (the parcel is on its way), with its fulfilment_date; if the
    # Smake pair ends any other way, the Reevoo pair ends cancelled and Reevoo is never called.
    submit_on: Literal["placed", "fulfilled"] = "placed"

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
    # A pair completed without tracking numbers (Smake adds shipments' numbers at or after
    # completion) is looked at this often, for at most this long after its completion.
    tracking_interval_s: float = Field(default=3_600.0, gt=0)
    tracking_deadline_s: float = Field(default=14 * 24 * 3_600.0, ge=0)


class HttpSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    # When set, POST /webhooks/* is served on this port only (and not on `port`): the one
    # port to expose to the internet, while probes and /metrics stay on `port`.
    webhook_port: int | None = Field(default=None, ge=0, le=65535)


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

    def poll_for(self, vendor: str) -> PollSettings:
        """The polling settings of one vendor's pairs: its own deadline, if it has one."""
        own = self.vendor_settings()[str(vendor)].deadline_s
        return self.poll if own is None else self.poll.model_copy(update={"deadline_s": own})


def kafka_security_problems(kafka: KafkaSettings) -> list[str]:
    """What the Kafka security settings lack, one text per variable: caught here, at start,
    rather than as a client library traceback at the first connection."""
    problems = []
    protocol = env_name("kafka", "security_protocol")
    if kafka.security_protocol.startswith("SASL"):
        for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
            if not _present(getattr(kafka, name)):
                problems.append(f"{env_name('kafka', name)} is required while {protocol} is "
                                f"{kafka.security_protocol}")
    if kafka.ssl_cafile is not None:
        if kafka.security_protocol not in ("SSL", "SASL_SSL"):
            problems.append(f"{env_name('kafka', 'ssl_cafile')} is set but {protocol} is "
                            f"{kafka.security_protocol}, which uses no TLS")
        elif not os.access(kafka.ssl_cafile, os.R_OK) or not os.path.isfile(kafka.ssl_cafile):
            problems.append(f"{env_name('kafka', 'ssl_cafile')}: no readable file at "
                            f"{kafka.ssl_cafile!r}")
    return problems


def _present(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value and value.strip())


def env_name(*path: str | int) -> str:
    """The environment variable behind a settings path: ("zakeke", "client_id") ->
    ORDERFLOW_ZAKEKE__CLIENT_ID."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p).upper() for p in path)


# Kubernetes injects these for a Service named `orderflow` into every pod of its namespace
# (service links). They are not settings and must not stop start-up.
_SERVICE_LINK = re.compile(
    r"ORDERFLOW_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT"
    r"|PORT_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)"
)


def setting_variables() -> list[str]:
    """Every environment variable that names a setting, groups included (a whole group may
    be given as JSON: ORDERFLOW_POLL='{...}')."""
    names: list[str] = []

    def walk(model: type[BaseModel], path: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            names.append(env_name(*path, name))
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, (*path, name))

    walk(Settings, ())
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`ORDERFLOW_*` variables that name no setting (service links excepted), each with the
    closest real name when there is one: `ORDERFLOW_KAFKA__BOOTSTRAP_SERVER (did you mean
    ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS?)`."""
    known = setting_variables()
    known_set = set(known)
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known_set or _SERVICE_LINK.fullmatch(upper):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{variable} names no setting{hint}")
    return problems


def overrides_from(environ: Mapping[str, str]) -> dict[str, Any]:
    """`ORDERFLOW_*` variables as the nested values `load_settings` takes: the sandbox
    builds one environment (sandbox/processes.py) for child processes and in-process
    services alike."""
    nested: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        *groups, leaf = name[len(ENV_PREFIX):].lower().split(ENV_NESTED_DELIMITER)
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = value
    return nested


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the settings from the environment (and `overrides`, used by the sandbox).

    Raises ConfigError with one line that names every offending variable found at the
    first stage that finds any: unknown variables, then bad values, then what is missing."""
    unknown = unknown_variables(os.environ if environ is None else environ)
    if unknown:
        raise ConfigError("; ".join(unknown))
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
    problems = [
        f"{env_name(vendor, name)} is required while {env_name(vendor, 'enabled')} is true"
        for vendor, vendor_settings in settings.vendor_settings().items()
        if vendor_settings.enabled
        for name in vendor_settings.missing_credentials()
    ]
    problems.extend(kafka_security_problems(settings.kafka))
    if problems:
        raise ConfigError("; ".join(problems))
    if settings.poll.max_interval_s < settings.poll.initial_interval_s:
        raise ConfigError(
            f"{env_name('poll', 'max_interval_s')} must not be below "
            f"{env_name('poll', 'initial_interval_s')}"
        )
    return settings
