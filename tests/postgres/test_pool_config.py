"""PoolConfig: every size boundary, warning threshold and environment variable."""

from __future__ import annotations

import logging
import warnings

import attrs
import pytest

from eventstore.errors import ConfigError
from eventstore.postgres import PoolConfig, PoolConfigWarning


def _quietly(**kwargs: object) -> PoolConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PoolConfigWarning)
        return PoolConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_valid() -> None:
    config = PoolConfig()
    assert (config.min_size, config.max_size, config.timeout) == (1, 10, 30.0)
    assert config.statement_timeout is None
    assert config.lock_timeout is None


def test_config_is_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        PoolConfig().min_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("field", ["min_size", "max_size"])
@pytest.mark.parametrize("value", [0, -1, 1001, 10_000])
def test_sizes_outside_1_to_1000_are_refused_naming_the_field(
    field: str, value: int
) -> None:
    kwargs = {"min_size": 1, "max_size": 1000, field: value}
    with pytest.raises(ConfigError, match=field):
        _quietly(**kwargs)


@pytest.mark.parametrize("field", ["min_size", "max_size"])
@pytest.mark.parametrize("value", [1.0, "5", True, None])
def test_sizes_must_be_ints(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        _quietly(**{"max_size": 10, field: value})


def test_size_1_and_1000_are_accepted() -> None:
    assert PoolConfig(min_size=1, max_size=1).max_size == 1
    config = _quietly(min_size=1000, max_size=1000)
    assert (config.min_size, config.max_size) == (1000, 1000)


def test_min_above_max_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError, match=r"min_size \(5\).*max_size \(4\)"):
        PoolConfig(min_size=5, max_size=4)


def test_min_equal_to_max_is_fine() -> None:
    assert PoolConfig(min_size=7, max_size=7).min_size == 7


def test_min_size_100_does_not_warn_but_101_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PoolConfig(min_size=100, max_size=100)
    with (
        caplog.at_level(logging.WARNING, logger="eventstore.postgres"),
        pytest.warns(PoolConfigWarning, match="min_size=101"),
    ):
        PoolConfig(min_size=101, max_size=101)
    assert "min_size=101" in caplog.text


def test_max_size_500_does_not_warn_but_501_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PoolConfig(min_size=1, max_size=500)
    with (
        caplog.at_level(logging.WARNING, logger="eventstore.postgres"),
        pytest.warns(PoolConfigWarning, match="max_size=501"),
    ):
        PoolConfig(min_size=1, max_size=501)
    assert "max_size=501" in caplog.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", float("inf")),
        ("timeout", float("nan")),
        ("timeout", "30"),
        ("max_idle", 0),
        ("max_lifetime", -5),
        ("timeout", 1e10),  # past threading.TIMEOUT_MAX: OverflowError at a wait
        ("max_idle", 1e300),
        ("statement_timeout", 0),
        ("lock_timeout", -0.5),
        # Past INT_MAX ms the server refuses every connection the pool opens.
        ("statement_timeout", 2_147_484.0),
        ("lock_timeout", 3e6),
        ("statement_timeout", float("inf")),
        ("max_waiting", -1),
        ("max_waiting", 1.5),
        ("application_name", 42),
        ("application_name", "x" * 64),
        ("application_name", "bad\x00name"),
        ("prepared_statements", 0),
        ("prepared_statements", 100_001),
        ("prepared_statements", True),
        ("prepared_statements", 40.0),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        PoolConfig(**{field: value})  # type: ignore[arg-type]


def test_timeouts_accept_fractions_and_none() -> None:
    config = PoolConfig(timeout=0.5, statement_timeout=0.25, lock_timeout=None)
    assert (config.timeout, config.statement_timeout) == (0.5, 0.25)


def test_server_timeouts_go_up_to_postgresqls_own_limit() -> None:
    config = PoolConfig(statement_timeout=2_147_483.647, lock_timeout=2_147_483.647)
    assert config.lock_timeout == 2_147_483.647


def test_from_env_reads_every_variable() -> None:
    config = PoolConfig.from_env(
        {
            "EVENTSTORE_POOL_MIN_SIZE": "2",
            "EVENTSTORE_POOL_MAX_SIZE": " 20 ",
            "EVENTSTORE_POOL_TIMEOUT": "2.5",
            "EVENTSTORE_POOL_MAX_WAITING": "50",
            "EVENTSTORE_POOL_MAX_IDLE": "60",
            "EVENTSTORE_POOL_MAX_LIFETIME": "1800",
            "EVENTSTORE_POOL_STATEMENT_TIMEOUT": "5",
            "EVENTSTORE_POOL_LOCK_TIMEOUT": "none",
            "EVENTSTORE_POOL_APPLICATION_NAME": "billing",
            "EVENTSTORE_POOL_PREPARED_STATEMENTS": "1000",
            "UNRELATED": "ignored",
        }
    )
    assert config == PoolConfig(
        min_size=2,
        max_size=20,
        timeout=2.5,
        max_waiting=50,
        max_idle=60.0,
        max_lifetime=1800.0,
        statement_timeout=5.0,
        lock_timeout=None,
        application_name="billing",
        prepared_statements=1000,
    )


def test_from_env_with_nothing_set_gives_the_defaults() -> None:
    assert PoolConfig.from_env({}) == PoolConfig()


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTSTORE_POOL_MAX_SIZE", "3")
    assert PoolConfig.from_env().max_size == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVENTSTORE_POOL_MIN_SIZE", "abc"),
        ("EVENTSTORE_POOL_MAX_SIZE", "1.5"),
        ("EVENTSTORE_POOL_MAX_SIZE", ""),
        ("EVENTSTORE_POOL_TIMEOUT", "soon"),
        ("EVENTSTORE_POOL_TIMEOUT", "inf"),
        ("EVENTSTORE_POOL_STATEMENT_TIMEOUT", "5s"),
        ("EVENTSTORE_POOL_MAX_WAITING", "many"),
        ("EVENTSTORE_POOL_MAX_SIZE", "1_0"),
        ("EVENTSTORE_POOL_MAX_SIZE", "\u0661\u0662"),  # Arabic-Indic 12
        ("EVENTSTORE_POOL_MAX_SIZE", "+-5"),
        ("EVENTSTORE_POOL_TIMEOUT", "1_0"),
        ("EVENTSTORE_POOL_TIMEOUT", "\u0661.5"),
        ("EVENTSTORE_POOL_TIMEOUT", "nan"),
        ("EVENTSTORE_POOL_TIMEOUT", "1e999"),
    ],
)
def test_from_env_names_a_malformed_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        PoolConfig.from_env({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EVENTSTORE_POOL_MIN_SIZE", "0"),
        ("EVENTSTORE_POOL_MAX_SIZE", "1001"),
        ("EVENTSTORE_POOL_TIMEOUT", "-1"),
    ],
)
def test_from_env_names_an_out_of_range_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        PoolConfig.from_env({variable: value})


def test_from_env_min_above_max_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="EVENTSTORE_POOL_MIN_SIZE"):
        PoolConfig.from_env(
            {"EVENTSTORE_POOL_MIN_SIZE": "9", "EVENTSTORE_POOL_MAX_SIZE": "3"}
        )


def test_from_env_reports_an_unknown_variable_and_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        PoolConfig.from_env({"EVENTSTORE_POOL_MAXSIZE": "5"})
    message = str(caught.value)
    assert "EVENTSTORE_POOL_MAXSIZE" in message
    assert "EVENTSTORE_POOL_MAX_SIZE" in message
    assert "EVENTSTORE_POOL_LOCK_TIMEOUT" in message


def test_from_env_warns_above_the_thresholds() -> None:
    with pytest.warns(PoolConfigWarning):
        PoolConfig.from_env({"EVENTSTORE_POOL_MAX_SIZE": "501"})


@pytest.mark.parametrize(
    "variable",
    [
        "EVENTSTORE_POL_MAX_SIZE",
        "EVENTSTOR_POOL_MIN_SIZE",
        "EVENT_STORE_POOL_TIMEOUT",
        "EVENTSTORE_POOLMAX_SIZE",
        "EVENTSOTRE_POOL_LOCK_TIMEOUT",
    ],
)
def test_from_env_reports_a_variable_misspelt_only_in_its_prefix(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PoolConfig.from_env({variable: "5"})
    assert f"unknown environment variable {variable}" in str(caught.value)


@pytest.mark.parametrize(
    "variable",
    ["PGPOOL_TIMEOUT", "SQLALCHEMY_POOL_TIMEOUT", "LOCK_TIMEOUT", "EVENTSTORE_DSN"],
)
def test_from_env_leaves_other_tools_variables_alone(variable: str) -> None:
    assert PoolConfig.from_env({variable: "5"}) == PoolConfig()
