"""The one redaction rule: credentials in free text and secret-named keys at any depth."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iftb.data.storage import DatabaseConnectionError, ValidationError
from iftb.utils.redaction import is_secret_key, redact, redact_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://bot:p@ssw0rd@db", "postgresql://bot:***@db"),
        ("postgresql://bot:p@ss:w0rd@db:5432/iftb", "postgresql://bot:***@db:5432/iftb"),
        ("postgresql+asyncpg://bot:s3@db/iftb?x=a@b", "postgresql+asyncpg://bot:***@db/iftb?x=a@b"),
        ("reach 'postgresql://bot:Zq%2F9@db/x' failed", "reach 'postgresql://bot:***@db/x' failed"),
        ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
        ("host=db user=bot password=secret dbname=x", "host=db user=bot password=*** dbname=x"),
        ("host=db password='my secret' port=5432", "host=db password='***' port=5432"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: ***"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=***"),
        ("X-API-KEY: k-123", "X-API-KEY: ***"),
        ("the exchange said Bearer abc123-def expired", "the exchange said Bearer *** expired"),
        ("GET /v1?api_key=abc&symbol=BTC", "GET /v1?api_key=***"),
        ("{'user': 'bot', 'password': 'p w'}", "{'user': 'bot', 'password': '***'}"),
        ('{"apiKey": "k\\"1", "side": "long"}', '{"apiKey": "***", "side": "long"}'),
        ("config.db.password = 'x'", "config.db.password = '***'"),
        ("dsn: password=zz", "dsn: password=***"),
        ("secret=a token=b access_token=c", "secret=*** token=*** access_token=***"),
        ("postgresql://bot:pa'ss@db/x", "postgresql://bot:***@db/x"),
        ('postgresql://bot:pa"ss@db/x failed', "postgresql://bot:***@db/x failed"),
        ("host=db password=pa'ss\"w port=1", "host=db password=*** port=1"),
        ("rejected 'host=db password=hunter2'", "rejected 'host=db password=***'"),
        ("{'dsn': 'password=x'}", "{'dsn': 'password=***'}"),
        ("password='ab'\"cd' end", "password='***' end"),
        ('{"password":"x","side":"long"}', '{"password":"***","side":"long"}'),
    ],
)  # fmt: skip
def test_redact_masks_every_credential_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://bot@db/iftb",
        "http://host:8080/path",
        "prompt_tokens=12 total_tokens=40",
        "author=Bob symbol=BTCUSDT",
        'password authentication failed for user "bot"',
        "basic strategy: token limit reached",
    ],
)
def test_redact_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "key",
    ["password", "DB_PASSWORD", "passwd", "pwd", "passphrase", "secret", "api_key", "apiKey",
     "X-API-KEY", "x_api_key", "token", "refresh_token", "Authorization", "auth", "credentials",
     "creds", "private_key", "PRIVATE-KEY", "db_pass"],
)  # fmt: skip
def test_secret_keys_are_recognised_whatever_their_case_and_separators(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["symbol", "author", "prompt_tokens", "passed", "side", "url"])
def test_ordinary_keys_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_secret_keys_are_masked_at_any_depth() -> None:
    data = {
        "config": {"db": {"password": "p1", "host": "db"}},
        "details": [{"creds": {"password": "p2"}}, ("Bearer t0k3n-xyz",)],
        "headers": {"X-API-KEY": "k", "Authorization": "Bearer t"},
        "note": "via postgresql://bot:p3@db",
        "count": 3,
    }
    assert redact_data(data) == {
        "config": {"db": {"password": "***", "host": "db"}},
        "details": [{"creds": "***"}, ["Bearer ***"]],
        "headers": {"X-API-KEY": "***", "Authorization": "***"},
        "note": "via postgresql://bot:***@db",
        "count": 3,
    }


def test_storage_error_messages_are_redacted() -> None:
    error = ValidationError("dsn: rejected 'host=db password=p4'", field="dsn").at_index(2)
    assert str(error) == "row 2: dsn: rejected 'host=db password=***'"
    assert "p5" not in str(DatabaseConnectionError("cannot reach postgresql://bot:p5@db"))


PASSWORDS = st.text(
    alphabet=string.ascii_letters + string.digits + "@:!$%^&*()-+=[]{}|~,.;<>", min_size=8
)


@given(password=PASSWORDS)
def test_no_password_survives_in_a_url(password: str) -> None:
    for shown in (password, quote(password, safe="")):
        redacted = redact(f"connect to postgresql+asyncpg://bot:{shown}@db.internal:5432/iftb")
        assert redacted == "connect to postgresql+asyncpg://bot:***@db.internal:5432/iftb"


@given(password=PASSWORDS)
def test_no_password_survives_in_a_key_value_string(password: str) -> None:
    assert redact(f"host=db password={password} dbname=iftb") == "host=db password=*** dbname=iftb"
    assert redact(f"host=db password='{password}'") == "host=db password='***'"


@pytest.mark.parametrize(
    "unit",
    ["x", "a://b:c", "k:", "a=b ", 'password="', "'password': '", "Bearer x", "x://"],
)
def test_long_hostile_texts_are_redacted_in_one_pass(unit: str) -> None:
    # 200,000 characters of each shape: a scan that looked ahead to the end of the text from
    # every position (as the first regular expressions did) would take hours, not milliseconds.
    text = unit * (200_000 // len(unit))
    assert redact(text).count("***") <= text.count(unit)
    assert redact(text + " password=hunter22").endswith("password=***")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (
            "private_key=-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\nQUJD\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXk",
        ),
        ("key file: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg", "MIIEvQIBADANBg"),
        ('password="' + "s3cr3t" * 1000 + '"', "s3cr3t"),
        ('token="never-closed and more', "never-closed"),
    ],
)
def test_long_quoted_secrets_and_private_keys_are_masked_whole(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_data_that_contains_itself_is_shown_cut_off_never_raising() -> None:
    cyclic: dict[str, object] = {"password": "pw-1"}
    cyclic["again"] = cyclic
    shown = str(redact_data(cyclic))
    assert "pw-1" not in shown and "<nested too deep>" in shown


QUOTED_PASSWORDS = st.text(alphabet=string.ascii_letters + string.digits + "'\"@:,", min_size=8)


@given(password=QUOTED_PASSWORDS)
def test_a_password_with_quotes_never_shows(password: str) -> None:
    """Quotes anywhere in a URL's password: masked whole. In a key=value secret no letter or
    digit shows: a quote that ends it, with any punctuation after, may close an enclosing
    string and is left outside the mask; one that opens it quotes it."""
    redacted = redact(f"connect to postgresql://bot:{password}@db.internal/iftb now")
    assert redacted == "connect to postgresql://bot:***@db.internal/iftb now"
    shown = redact(f"host=db password={password} dbname=iftb")
    assert shown.startswith("host=db password=")
    rest = shown.removeprefix("host=db password=").removesuffix(" dbname=iftb")
    assert not any(char.isalnum() for char in rest)
