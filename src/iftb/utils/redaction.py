"""The one redaction mechanism: every log format, stored event and error message goes through it.

Two views of one rule. Structured data (log context, event details) is masked by key, at any
depth: a key that names a secret (``password``, ``api_key``, ``X-API-KEY``, ``Authorization``…,
case-, ``-``- and ``_``-insensitive) has its value replaced whatever it holds. Free text (messages,
exception texts, tracebacks) is masked by shape: URL userinfo passwords, ``key=value`` and
``key: value`` pairs whose key names a secret (libpq strings, query strings, headers, reprs of
dicts), and ``Bearer``/``Basic`` credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Matched against the key lowercased with "-" and "_" removed (``X-API-KEY`` -> ``xapikey``).
# ``token`` but not ``tokens``: token counts (``prompt_tokens``) are not secrets.
_SECRET_KEY = re.compile(
    r"pass(?:word|wd|phrase)|secret|token(?!s)|apikey|credential|privatekey|authori[sz]ation"
    r"|pass$|auth$|pwd$|creds$"
)
_KEY_NOISE = str.maketrans("", "", "-_ ")

# scheme://user:password@host — the password may itself hold ':' and '@': the userinfo ends at
# the last '@' of the token, the one whose host part (up to '/', '?', '#', a quote or a blank)
# holds no further '@'.
_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*):(?P<secret>[^\s'\"]*?)@"
    r"(?=[^\s@/?#'\"]*(?:[/?#\s'\"]|$))",
    re.IGNORECASE,
)
_AUTH_SCHEME = r"(?:Bearer|Basic|Digest|Token)\s+"
# Outside a secret-named pair, only the schemes as headers spell them, followed by something as
# long as a credential: "basic strategy" and "token limit" are prose, not secrets.
_CREDENTIAL = re.compile(r"\b(?P<scheme>(?:Bearer|Basic|Digest)\s+)[A-Za-z0-9._~+/=:-]{8,}")
# key=value / key: value, the key bare or quoted (JSON, Python reprs), the value quoted or up to
# the next blank or quote (as libpq reads it: over-masking a query string's tail is the safe side);
# an Authorization value keeps its scheme word inside the value.
_PAIR = re.compile(
    r"(?P<key>(?P<quote>[\"']?)[A-Za-z_][\w.-]*(?P=quote))(?P<sep>\s*[:=]\s*)"
    rf"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|(?:{_AUTH_SCHEME})?[^\s'\"]+)",
    re.IGNORECASE,
)


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``db.password``, ``X-API-KEY``, ``apiKey``…)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.lower().translate(_KEY_NOISE)))


def redact(text: str) -> str:
    """``text`` with every credential it carries masked (URL passwords, secret pairs, tokens)."""
    text = _URL_USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _mask_pairs(text)
    return _CREDENTIAL.sub(rf"\g<scheme>{MASK}", text)


def redact_data(value: Any) -> Any:
    """A copy of ``value`` with secret-named keys masked at any depth and every string redacted.

    Mappings become dicts and lists/tuples lists (the shapes JSON and log renderers take); other
    values are returned as they are.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            key: MASK if is_secret_key(key) else redact_data(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(item) for item in value]
    return value


def _mask_pairs(text: str) -> str:
    """Mask the value of each secret-named pair. Scanning resumes right after a key that is not
    a secret, so its value is read as text again ("error: password=x", "dsn: token=y")."""
    parts, position = [], 0
    while match := _PAIR.search(text, position):
        if is_secret_key(match["key"].strip("\"'")):
            value = match["value"]
            quote = value[0] if value[:1] in ("'", '"') else ""
            parts.append(f"{text[position : match.start('value')]}{quote}{MASK}{quote}")
            position = match.end()
        else:
            parts.append(text[position : match.end("sep")])
            position = match.end("sep")
    parts.append(text[position:])
    return "".join(parts)
