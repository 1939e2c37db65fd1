"""Settings against the contract's table: every variable's exact name and default, one-line
errors that name the variable, vendor credentials, Reevoo's sales channels, and the exit
code of `orderflow run` on a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from orderflow.config.settings import ConfigError, Settings, env_name, load_settings, setting_variables

ROOT = Path(__file__).parents[2]

# The contract's settings table, row by row: variable, path in Settings, default.
CONTRACT_DEFAULTS: list[tuple[str, tuple[str, ...], Any]] = [
    ("ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS", ("kafka", "bootstrap_servers"), "localhost:9092"),
    ("ORDERFLOW_KAFKA__GROUP_ID", ("kafka", "group_id"), "orderflow"),
    ("ORDERFLOW_TOPICS__ORDERS_CREATED", ("topics", "orders_created"), "orders.created"),
    ("ORDERFLOW_TOPICS__STATUS", ("topics", "status"), "orders.status"),
    ("ORDERFLOW_TOPICS__PRINT_FILES_READY", ("topics", "print_files_ready"), "orders.print-files-ready"),
    ("ORDERFLOW_TOPICS__DEAD_LETTER", ("topics", "dead_letter"), "orders.created.dlq"),
    ("ORDERFLOW_TOPICS__TRACKING", ("topics", "tracking"), "orderflow.tracking"),
    ("ORDERFLOW_ZAKEKE__ENABLED", ("zakeke", "enabled"), True),
    ("ORDERFLOW_ZAKEKE__BASE_URL", ("zakeke", "base_url"), "https://api.zakeke.com"),
    ("ORDERFLOW_ZAKEKE__CLIENT_ID", ("zakeke", "client_id"), None),
    ("ORDERFLOW_ZAKEKE__CLIENT_SECRET", ("zakeke", "client_secret"), None),
    ("ORDERFLOW_SMAKE__ENABLED", ("smake", "enabled"), True),
    ("ORDERFLOW_SMAKE__BASE_URL", ("smake", "base_url"), "https://api.smake.io/v2"),
    ("ORDERFLOW_SMAKE__API_KEY", ("smake", "api_key"), None),
    ("ORDERFLOW_REEVOO__ENABLED", ("reevoo", "enabled"), True),
    ("ORDERFLOW_REEVOO__BASE_URL", ("reevoo", "base_url"), "https://api.reevoocloud.com"),
    ("ORDERFLOW_REEVOO__API_KEY", ("reevoo", "api_key"), None),
    ("ORDERFLOW_REEVOO__API_SECRET", ("reevoo", "api_secret"), None),
    ("ORDERFLOW_REEVOO__TRKREF", ("reevoo", "trkref"), None),
    ("ORDERFLOW_REEVOO__SALES_CHANNELS", ("reevoo", "sales_channels"), None),  # None: all
    ("ORDERFLOW_POLL__INITIAL_INTERVAL_S", ("poll", "initial_interval_s"), 5),
    ("ORDERFLOW_POLL__MAX_INTERVAL_S", ("poll", "max_interval_s"), 300),
    ("ORDERFLOW_POLL__DEADLINE_S", ("poll", "deadline_s"), 172800),
    ("ORDERFLOW_HTTP__HOST", ("http", "host"), "0.0.0.0"),
    ("ORDERFLOW_HTTP__PORT", ("http", "port"), 8080),
    ("ORDERFLOW_LOG__FORMAT", ("log", "format"), "json"),
    ("ORDERFLOW_LOG__LEVEL", ("log", "level"), "INFO"),
    ("ORDERFLOW_SHUTDOWN_GRACE_S", ("shutdown_grace_s",), 25),
]

# A value for each variable and what it must become.
SAMPLES: dict[str, tuple[str, Any]] = {
    "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": ("b1:9093,b2:9093", "b1:9093,b2:9093"),
    "ORDERFLOW_KAFKA__GROUP_ID": ("orderflow-eu", "orderflow-eu"),
    "ORDERFLOW_TOPICS__ORDERS_CREATED": ("in", "in"),
    "ORDERFLOW_TOPICS__STATUS": ("status", "status"),
    "ORDERFLOW_TOPICS__PRINT_FILES_READY": ("files", "files"),
    "ORDERFLOW_TOPICS__DEAD_LETTER": ("dlq", "dlq"),
    "ORDERFLOW_TOPICS__TRACKING": ("track", "track"),
    "ORDERFLOW_ZAKEKE__ENABLED": ("false", False),
    "ORDERFLOW_ZAKEKE__BASE_URL": ("http://zakeke.test:8001/", "http://zakeke.test:8001"),
    "ORDERFLOW_ZAKEKE__CLIENT_ID": ("zid", "zid"),
    "ORDERFLOW_ZAKEKE__CLIENT_SECRET": ("zsecret", "zsecret"),
    "ORDERFLOW_SMAKE__ENABLED": ("0", False),
    "ORDERFLOW_SMAKE__BASE_URL": ("https://api.smake.io/v2/apps/1", "https://api.smake.io/v2/apps/1"),
    "ORDERFLOW_SMAKE__API_KEY": ("skey", "skey"),
    "ORDERFLOW_REEVOO__ENABLED": ("no", False),
    "ORDERFLOW_REEVOO__BASE_URL": ("https://reevoo.test", "https://reevoo.test"),
    "ORDERFLOW_REEVOO__API_KEY": ("rkey", "rkey"),
    "ORDERFLOW_REEVOO__API_SECRET": ("rsecret", "rsecret"),
    "ORDERFLOW_REEVOO__TRKREF": ("ABC", "ABC"),
    "ORDERFLOW_REEVOO__SALES_CHANNELS": ("webshop-de,app", frozenset({"webshop-de", "app"})),
    "ORDERFLOW_POLL__INITIAL_INTERVAL_S": ("0.5", 0.5),
    "ORDERFLOW_POLL__MAX_INTERVAL_S": ("60", 60),
    "ORDERFLOW_POLL__DEADLINE_S": ("3600", 3600),
    "ORDERFLOW_HTTP__HOST": ("127.0.0.1", "127.0.0.1"),
    "ORDERFLOW_HTTP__PORT": ("9000", 9000),
    "ORDERFLOW_LOG__FORMAT": ("console", "console"),
    "ORDERFLOW_LOG__LEVEL": ("debug", "DEBUG"),
    "ORDERFLOW_SHUTDOWN_GRACE_S": ("40", 40),
}

CREDENTIALS = {
    "ORDERFLOW_ZAKEKE__CLIENT_ID": "zid",
    "ORDERFLOW_ZAKEKE__CLIENT_SECRET": "zsecret",
    "ORDERFLOW_SMAKE__API_KEY": "skey",
    "ORDERFLOW_REEVOO__API_KEY": "rkey",
    "ORDERFLOW_REEVOO__API_SECRET": "rsecret",
    "ORDERFLOW_REEVOO__TRKREF": "ABC",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no ORDERFLOW_ variable of the machine leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("ORDERFLOW_"):
            monkeypatch.delenv(name)


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def value_at(settings: Settings, path: tuple[str, ...]) -> Any:
    node: Any = settings
    for part in path:
        node = getattr(node, part)
    return node.get_secret_value() if isinstance(node, SecretStr) else node


def config_error(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> str:
    set_env(monkeypatch, values)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message, "a configuration error is one line"
    return message


# ----------------------------------------------------------------------------- names and defaults


def test_the_table_and_the_samples_cover_the_same_variables() -> None:
    assert [row[0] for row in CONTRACT_DEFAULTS] == list(SAMPLES)


@pytest.mark.parametrize(("variable", "path", "default"), CONTRACT_DEFAULTS,
                         ids=[row[0] for row in CONTRACT_DEFAULTS])
def test_contract_default(variable: str, path: tuple[str, ...], default: Any) -> None:
    assert env_name(*path) == variable
    assert value_at(Settings(), path) == default


@pytest.mark.parametrize(("variable", "path", "default"), CONTRACT_DEFAULTS,
                         ids=[row[0] for row in CONTRACT_DEFAULTS])
def test_contract_variable_sets_its_setting(monkeypatch: pytest.MonkeyPatch, variable: str,
                                           path: tuple[str, ...], default: Any) -> None:
    raw, expected = SAMPLES[variable]
    set_env(monkeypatch, {**CREDENTIALS, variable: raw})
    assert value_at(load_settings(), path) == expected


def test_defaults_with_credentials_load(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, CREDENTIALS)
    settings = load_settings()
    assert settings.zakeke.client_secret is not None
    assert settings.zakeke.client_secret.get_secret_value() == "zsecret"
    assert "zsecret" not in repr(settings), "secrets never show in a repr (or a log line)"


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**CREDENTIALS, "orderflow_poll__deadline_s": "60"})
    assert load_settings().poll.deadline_s == 60


def test_a_default_method_a_set_map_does_not_know_stops_start_up_naming_both(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With a method map set, an order naming no method got the default sent unmapped, and
    Smake refused it (422): caught at start now, naming the two settings."""
    message = config_error(monkeypatch, {**CREDENTIALS,
                                         "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP": "express=dhl-express"})
    assert "ORDERFLOW_SMAKE__DEFAULT_SHIPPING_METHOD='standard'" in message
    assert "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP" in message
    for default in ("express", "dhl-express"):  # our word, or the producer's handle: fine
        set_env(monkeypatch, {"ORDERFLOW_SMAKE__DEFAULT_SHIPPING_METHOD": default})
        assert load_settings().smake.default_shipping_method == default


def test_the_artwork_hand_off_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**CREDENTIALS, "ORDERFLOW_SMAKE__ARTWORK_FORMAT": "png",
                          "ORDERFLOW_SMAKE__ARTWORK_SIZE_MM": "210x297",
                          "ORDERFLOW_SMAKE__ARTWORK_VIEW": "back",
                          "ORDERFLOW_SMAKE__PRODUCTION_METHOD": "screen",
                          "ORDERFLOW_ZAKEKE__FILE_HOSTS": "cdn.zakeke.com, Files.Example",
                          "ORDERFLOW_ZAKEKE__BASE_CURRENCY": "GBP"})
    settings = load_settings()
    assert (settings.smake.artwork_format, settings.smake.artwork_size_mm) == ("PNG", (210, 297))
    assert (settings.smake.artwork_view, settings.smake.production_method) == ("back", "screen")
    assert settings.zakeke.file_hosts == {"cdn.zakeke.com", "files.example"}
    assert settings.zakeke.base_currency == "GBP"


def test_a_vendor_deadline_replaces_the_polling_deadline_for_that_vendor_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Contract: `ORDERFLOW_<VENDOR>__DEADLINE_S` is that vendor's polling deadline, in place
    of `ORDERFLOW_POLL__DEADLINE_S` (Smake's production is manual work that can take days)."""
    set_env(monkeypatch, {**CREDENTIALS, "ORDERFLOW_POLL__DEADLINE_S": "3600",
                          "ORDERFLOW_ZAKEKE__DEADLINE_S": "600"})
    settings = load_settings()
    assert settings.poll_for("zakeke").deadline_s == 600
    assert settings.poll_for("reevoo").deadline_s == 3600, "unset: the polling deadline"
    assert settings.poll_for("smake").deadline_s == 10 * 24 * 3600, "Smake's own default: days"
    assert settings.poll_for("zakeke").initial_interval_s == settings.poll.initial_interval_s


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(("variable", "value"), [
    ("ORDERFLOW_POLL__DEADLINE_S", "soon"),
    ("ORDERFLOW_POLL__DEADLINE_S", "0"),
    ("ORDERFLOW_POLL__INITIAL_INTERVAL_S", "-1"),
    ("ORDERFLOW_HTTP__PORT", "70000"),
    ("ORDERFLOW_HTTP__PORT", "http"),
    ("ORDERFLOW_LOG__FORMAT", "xml"),
    ("ORDERFLOW_LOG__LEVEL", "LOUD"),
    ("ORDERFLOW_ZAKEKE__ENABLED", "maybe"),
    ("ORDERFLOW_SMAKE__BASE_URL", "api.smake.io/v2"),
    ("ORDERFLOW_REEVOO__BASE_URL", "ftp://reevoo.test"),
    ("ORDERFLOW_TOPICS__STATUS", ""),
    ("ORDERFLOW_SHUTDOWN_GRACE_S", "-5"),
    ("ORDERFLOW_KAFKA__SESSION_TIMEOUT_MS", "10"),
    ("ORDERFLOW_POLL", "not json"),  # a whole group as JSON
    ("ORDERFLOW_SMAKE__DEADLINE_S", "0"),
    ("ORDERFLOW_SMAKE__ARTWORK_SIZE_MM", "big"),
    ("ORDERFLOW_SMAKE__ARTWORK_SIZE_MM", "0x300"),
    ("ORDERFLOW_SMAKE__ARTWORK_FORMAT", "TIFF"),
    ("ORDERFLOW_ZAKEKE__BASE_CURRENCY", "euro"),
    ("ORDERFLOW_REEVOO__SUBMIT_ON", "shipped"),
    ("ORDERFLOW_REEVOO__DEADLINE_S", "a week"),
])
def test_bad_value_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                   value: str) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, variable: value})
    assert message.startswith(f"{variable}:"), message


def test_max_poll_interval_below_the_initial_one_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, "ORDERFLOW_POLL__INITIAL_INTERVAL_S": "60",
                                         "ORDERFLOW_POLL__MAX_INTERVAL_S": "30"})
    assert "ORDERFLOW_POLL__MAX_INTERVAL_S" in message
    assert "ORDERFLOW_POLL__INITIAL_INTERVAL_S" in message


# ----------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("missing", list(CREDENTIALS))
def test_enabled_vendor_missing_a_credential_names_it(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    values = {name: value for name, value in CREDENTIALS.items() if name != missing}
    message = config_error(monkeypatch, values)
    vendor = missing.split("__")[0]
    assert message == f"{missing} is required while {vendor}__ENABLED is true"


@pytest.mark.parametrize("variable", [*CREDENTIALS, "ORDERFLOW_SMAKE__WEBHOOK_TOKEN"])
def test_a_credential_of_only_white_space_is_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """A webhook token of only white space once turned the endpoint on with a guessable key."""
    message = config_error(monkeypatch, {**CREDENTIALS, variable: " \n\t"})
    assert message.startswith(f"{variable}: Value error, is only white space")


def test_an_empty_credential_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, "ORDERFLOW_SMAKE__API_KEY": ""})
    assert message.startswith("ORDERFLOW_SMAKE__API_KEY is required")


def test_credentials_are_used_as_checked_without_surrounding_white_space(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Secret mounted from a file ends in a newline; sent with it, every call failed."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, f" {value}\n")
    monkeypatch.setenv("ORDERFLOW_SMAKE__WEBHOOK_TOKEN", "token\n")
    settings = load_settings()
    assert settings.zakeke.client_id == CREDENTIALS["ORDERFLOW_ZAKEKE__CLIENT_ID"]
    secrets = (settings.zakeke.client_secret, settings.smake.api_key, settings.reevoo.api_key,
               settings.reevoo.api_secret, settings.smake.webhook_token)
    assert all(s is not None and s.get_secret_value() == s.get_secret_value().strip()
               for s in secrets)
    assert settings.smake.webhook_token is not None
    assert settings.smake.webhook_token.get_secret_value() == "token"
    assert settings.reevoo.trkref == CREDENTIALS["ORDERFLOW_REEVOO__TRKREF"]


def test_no_credentials_at_all_names_every_missing_one_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, {})
    assert message.startswith("ORDERFLOW_ZAKEKE__CLIENT_ID is required")
    for variable in CREDENTIALS:
        assert f"{variable} is required" in message


@pytest.mark.parametrize("vendor", ["ZAKEKE", "SMAKE", "REEVOO"])
def test_disabled_vendor_needs_no_credentials(monkeypatch: pytest.MonkeyPatch, vendor: str) -> None:
    others = {name: value for name, value in CREDENTIALS.items() if f"_{vendor}__" not in name}
    set_env(monkeypatch, {**others, f"ORDERFLOW_{vendor}__ENABLED": "false"})
    settings = load_settings()
    assert settings.vendor_settings()[vendor.lower()].enabled is False


def test_every_vendor_disabled_needs_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {f"ORDERFLOW_{v}__ENABLED": "false" for v in ("ZAKEKE", "SMAKE", "REEVOO")})
    assert not any(v.enabled for v in load_settings().vendor_settings().values())


# ----------------------------------------------------------------------------- sales channels


@pytest.mark.parametrize(("raw", "expected"), [
    (None, None),
    ("all", None),
    (" all ", None),
    ("", None),
    ("webshop-de", frozenset({"webshop-de"})),
    ("a,b", frozenset({"a", "b"})),
    (" a , b ,, ", frozenset({"a", "b"})),
])
def test_reevoo_sales_channels(monkeypatch: pytest.MonkeyPatch, raw: str | None,
                               expected: frozenset[str] | None) -> None:
    if raw is not None:
        monkeypatch.setenv("ORDERFLOW_REEVOO__SALES_CHANNELS", raw)
    set_env(monkeypatch, CREDENTIALS)
    assert load_settings().reevoo.sales_channels == expected


# ----------------------------------------------------------------------------- the command


def run_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("ORDERFLOW_")}
    return subprocess.run([sys.executable, "-m", "orderflow", "run"], env={**base, **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_run_with_a_bad_setting_exits_2_with_one_line_naming_it() -> None:
    done = run_command({**CREDENTIALS, "ORDERFLOW_POLL__DEADLINE_S": "soon",
                        # Nothing listens here: the command must fail before any network I/O.
                        "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "ORDERFLOW_POLL__DEADLINE_S" in lines[0]
    assert done.stdout == ""


def test_run_without_a_credential_exits_2_naming_it() -> None:
    env = {k: v for k, v in CREDENTIALS.items() if k != "ORDERFLOW_REEVOO__TRKREF"}
    done = run_command({**env, "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "orderflow: configuration error: ORDERFLOW_REEVOO__TRKREF is required while "
        "ORDERFLOW_REEVOO__ENABLED is true"]


# ----------------------------------------------------------------------------- unknown variables


@pytest.mark.parametrize(("variable", "closest"), [
    ("ORDERFLOW_KAFKA__BOOTSTRAP_SERVER", "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS"),
    ("ORDERFLOW_SMAKE__APIKEY", "ORDERFLOW_SMAKE__API_KEY"),
    ("ORDERFLOW_POLL_DEADLINE_S", "ORDERFLOW_POLL__DEADLINE_S"),
    ("orderflow_shutdown_grace", "ORDERFLOW_SHUTDOWN_GRACE_S"),
])
def test_a_misspelt_variable_stops_start_up_naming_it_and_the_closest_name(
        monkeypatch: pytest.MonkeyPatch, variable: str, closest: str) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, variable: "x"})
    assert message == f"{variable} names no setting (did you mean {closest}?)"


def test_an_unknown_variable_like_no_setting_is_named_without_a_guess(
        monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, "ORDERFLOW_QQQQQQQQQQQQQQQQ": "1"})
    assert message == "ORDERFLOW_QQQQQQQQQQQQQQQQ names no setting"


# What Kubernetes injects for a Service named `orderflow` (service links), as a pod of the
# shipped manifests would see them before enableServiceLinks: false.
SERVICE_LINKS = {
    "ORDERFLOW_SERVICE_HOST": "10.0.0.12",
    "ORDERFLOW_SERVICE_PORT": "8080",
    "ORDERFLOW_SERVICE_PORT_HTTP": "8080",
    "ORDERFLOW_PORT": "tcp://10.0.0.12:8080",
    "ORDERFLOW_PORT_8080_TCP": "tcp://10.0.0.12:8080",
    "ORDERFLOW_PORT_8080_TCP_PROTO": "tcp",
    "ORDERFLOW_PORT_8080_TCP_PORT": "8080",
    "ORDERFLOW_PORT_8080_TCP_ADDR": "10.0.0.12",
}


def test_kubernetes_service_link_variables_are_not_settings_and_do_not_stop_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**CREDENTIALS, **SERVICE_LINKS})
    assert load_settings().http.port == 8080


def test_every_setting_variable_is_known_groups_included() -> None:
    known = set(setting_variables())
    assert {row[0] for row in CONTRACT_DEFAULTS} <= known
    assert {"ORDERFLOW_POLL", "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP",
            "ORDERFLOW_SMAKE__PAYMENT_METHOD_MAP", "ORDERFLOW_SMAKE__WEBHOOK_TOKEN"} <= known


def test_the_run_command_refuses_a_misspelt_variable_with_exit_2_and_one_line() -> None:
    done = run_command({**CREDENTIALS, "ORDERFLOW_KAFKA__BOOTSTRAP_SERVER": "broker:9092"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "orderflow: configuration error: ORDERFLOW_KAFKA__BOOTSTRAP_SERVER names no setting "
        "(did you mean ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS?)"]


# ----------------------------------------------------------------------------- Kafka security


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_mechanism_user_and_password_names_each(monkeypatch: pytest.MonkeyPatch,
                                                             protocol: str) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS,
                                         "ORDERFLOW_KAFKA__SECURITY_PROTOCOL": protocol})
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"):
        assert (f"ORDERFLOW_KAFKA__{name} is required while ORDERFLOW_KAFKA__SECURITY_PROTOCOL "
                f"is {protocol}") in message


def test_sasl_with_only_the_password_missing_names_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, {
        **CREDENTIALS, "ORDERFLOW_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "ORDERFLOW_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "ORDERFLOW_KAFKA__SASL_USERNAME": "u"})
    assert message == ("ORDERFLOW_KAFKA__SASL_PASSWORD is required while "
                       "ORDERFLOW_KAFKA__SECURITY_PROTOCOL is SASL_SSL")


def test_a_ca_file_that_cannot_be_read_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    message = config_error(monkeypatch, {**CREDENTIALS, "ORDERFLOW_KAFKA__SECURITY_PROTOCOL": "SSL",
                                         "ORDERFLOW_KAFKA__SSL_CAFILE": str(missing)})
    assert message == f"ORDERFLOW_KAFKA__SSL_CAFILE: no readable file at {str(missing)!r}"


def test_a_readable_ca_file_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    set_env(monkeypatch, {**CREDENTIALS, "ORDERFLOW_KAFKA__SECURITY_PROTOCOL": "SSL",
                          "ORDERFLOW_KAFKA__SSL_CAFILE": str(ca)})
    assert load_settings().kafka.ssl_cafile == str(ca)


def test_the_run_command_names_a_sasl_gap_with_exit_2_before_any_connection() -> None:
    done = run_command({**CREDENTIALS, "ORDERFLOW_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                        "ORDERFLOW_KAFKA__SASL_MECHANISM": "PLAIN",
                        "ORDERFLOW_KAFKA__SASL_PASSWORD": "p",
                        "ORDERFLOW_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "orderflow: configuration error: ORDERFLOW_KAFKA__SASL_USERNAME is required while "
        "ORDERFLOW_KAFKA__SECURITY_PROTOCOL is SASL_SSL"]


# ----------------------------------------------------------------------------- Smake method maps


def test_method_maps_read_ours_equals_theirs(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {**CREDENTIALS,
                          "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP": " standard = dhl-paket ,express=ups,",
                          "ORDERFLOW_SMAKE__PAYMENT_METHOD_MAP": "invoice=invoice-b2b"})
    smake = load_settings().smake
    assert smake.shipping_method_map == {"standard": "dhl-paket", "express": "ups"}
    assert smake.payment_method_map == {"invoice": "invoice-b2b"}


@pytest.mark.parametrize("raw", ["standard", "standard=", "=dhl", "a=b,a=c"])
def test_a_bad_method_map_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    message = config_error(monkeypatch, {**CREDENTIALS, "ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP": raw})
    assert message.startswith("ORDERFLOW_SMAKE__SHIPPING_METHOD_MAP:"), message


# ----------------------------------------------------------------------------- tracking topic


def test_a_refused_tracking_topic_creation_names_the_topic_and_the_brokers_error() -> None:
    from orderflow.consumer.kafka import creation_problem

    refused = [("orderflow.tracking", 38, "Replication factor: 3 larger than available brokers: 1.")]
    assert creation_problem("orderflow.tracking", refused) == (
        "InvalidReplicationFactorError (code 38): Replication factor: 3 larger than available "
        "brokers: 1.")


@pytest.mark.parametrize("answer", [[("orderflow.tracking", 0, None)],
                                    [("orderflow.tracking", 36, "exists")],  # another replica won
                                    [("other", 38, "not ours")], []])
def test_a_tracking_topic_creation_that_worked_is_no_problem(answer: list[tuple[Any, ...]]) -> None:
    from orderflow.consumer.kafka import creation_problem

    assert creation_problem("orderflow.tracking", answer) is None


def test_the_sandbox_environment_names_every_topic_of_a_run() -> None:
    """Without its control topic, every test run shared `orderflow.control`, and a pause
    left by one failing test held Smake for every later one."""
    from orderflow.sandbox.broker import prefixed_topics
    from orderflow.sandbox.processes import sandbox_env

    topics = prefixed_topics("t42")
    env = sandbox_env("127.0.0.1:9", topics, {})
    for name, value in topics.model_dump().items():
        assert env[env_name("topics", name)] == value
    assert load_settings(env, **overrides_of(env)).topics == topics


def overrides_of(env: dict[str, str]) -> dict[str, Any]:
    from orderflow.config.settings import overrides_from

    return overrides_from(env)
