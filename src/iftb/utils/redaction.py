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
from bisect import bisect_left
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
# the first '@' after which the host part (up to '/', '?', '#' or the token's end) holds no
# further '@'. Found by a scan (``_mask_url_passwords``), linear in the text's length.
_URL_SCHEME = re.compile(r"\b[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_TOKEN = re.compile(r"\S+")  # quotes included: a password may hold one
_HOST_END = frozenset("/?#")
_AUTH_SCHEME = r"(?:Bearer|Basic|Digest|Token)\s+"
# Outside a secret-named pair, only the schemes as headers spell them, followed by something as
# long as a credential: "basic strategy" and "token limit" are prose, not secrets.
_CREDENTIAL = re.compile(r"\b(?P<scheme>(?:Bearer|Basic|Digest)\s+)[A-Za-z0-9._~+/=:-]{8,}")
# key=value / key: value, the key bare or quoted (JSON, Python reprs), the value quoted or up to
# the next blank or quote (as libpq reads it: over-masking a query string's tail is the safe side);
# an Authorization value keeps its scheme word inside the value.
# The key starts where a word starts and is at most 64 characters long, so a search costs a
# bounded look at each position: a long text without pairs is scanned in linear time.
_PAIR_KEY = re.compile(
    r"(?<![\w.-])(?P<key>(?P<quote>[\"']?)[A-Za-z_][\w.-]{0,63}(?P=quote))(?P<sep>\s*[:=]\s*)"
)
# A secret's value, read only after a secret key: quoted (to the closing quote, or to the end of
# the line when there is none), or up to the next blank — quotes included, as a password may
# hold one (over-masking a closing bracket or comma is the safe side).
_PAIR_VALUE = re.compile(
    rf"\"(?:[^\"\\\n]|\\.)*(?:\"|$)|'(?:[^'\\\n]|\\.)*(?:'|$)|(?:{_AUTH_SCHEME})?\S+",
    re.IGNORECASE | re.MULTILINE,
)
# A PEM private key (an exchange's Ed25519 or RSA API key): masked from BEGIN to END, or to the
# end of the text when its END is missing.
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_PEM_END = "PRIVATE KEY-----"
_MAX_DEPTH = 32  # nesting redacted; deeper (or self-containing) data is not shown at all


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a secret (``db.password``, ``X-API-KEY``, ``apiKey``…)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key.lower().translate(_KEY_NOISE)))


def redact(text: str) -> str:
    """``text`` with every credential it carries masked (URL passwords, secret pairs, tokens)."""
    text = _mask_pem_keys(text)
    text = _mask_url_passwords(text)
    text = _mask_pairs(text)
    return _CREDENTIAL.sub(rf"\g<scheme>{MASK}", text)


def redact_data(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secret-named keys masked at any depth and every string redacted.

    Mappings become dicts and lists/tuples lists (the shapes JSON and log renderers take); other
    values are returned as they are. Nesting past 32 levels (or a structure that contains
    itself) is replaced by a marker: a log call never raises.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping | list | tuple) and _depth >= _MAX_DEPTH:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {
            key: MASK if is_secret_key(key) else redact_data(item, _depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(item, _depth + 1) for item in value]
    return value


def _mask_pem_keys(text: str) -> str:
    parts, position = [], 0
    while begin := _PEM_BEGIN.search(text, position):
        end = text.find(_PEM_END, begin.end())
        stop = len(text) if end < 0 else end + len(_PEM_END)
        parts.append(f"{text[position : begin.start()]}{MASK}")
        position = stop
    parts.append(text[position:])
    return "".join(parts)


def _mask_url_passwords(text: str) -> str:
    """Mask the password of every ``scheme://user:password@host`` in ``text``."""
    if "://" not in text:
        return text
    return _TOKEN.sub(lambda token: _mask_token(token.group()), text)


def _mask_token(token: str) -> str:
    if "://" not in token:
        return token
    closers = _userinfo_ends(token)
    parts, position = [], 0
    for scheme in _URL_SCHEME.finditer(token):
        start = scheme.end()
        following = bisect_left(closers, start)
        if start < position or following == len(closers):
            continue
        at = closers[following]
        colon = token.find(":", start, at)
        if colon < 0 or "/" in token[start:colon] or "@" in token[start:colon]:
            continue
        parts.append(f"{token[position : colon + 1]}{MASK}")
        position = at
    parts.append(token[position:])
    return "".join(parts)


def _userinfo_ends(token: str) -> list[int]:
    """The indices of the '@'s that can close a userinfo, ascending: those with no other '@'
    between them and the next host delimiter (or the token's end). One scan from the right."""
    found: list[int] = []
    later_at = False
    for index in range(len(token) - 1, -1, -1):
        char = token[index]
        if char in _HOST_END:
            later_at = False
        elif char == "@":
            if not later_at:
                found.append(index)
            later_at = True
    return found[::-1]


def _quoted_end(text: str, end: int) -> int:
    """Where a quoted secret ends: at its closing quote, unless more of a word follows it (a
    password that begins with a quote, ``'ab'c``, ``'ab'"c``, ``'ab',c``): then at the next
    blank. A quote followed by a separator and the next key (``"x","side":``) ends it."""
    tail = _WORD_TAIL.match(text, end)
    if tail is None:
        return end
    word = tail[0]
    more = word[0].isalnum() or word[0] in "'\"" or (word[0] in ",;" and word[1:2].isalnum())
    return tail.end() if more else end


_WORD_TAIL = re.compile(r"\S+")


def _unquoted_length(value: str) -> int:
    """How much of an unquoted secret value is the secret: all of it, but for a quote that only
    closes an enclosing string (``'host=db password=x'``, ``{'dsn': 'password=x'}``): one
    followed by nothing but punctuation. A quote inside the secret (``pa'ss``) is kept in it."""
    for index, char in enumerate(value):
        if char in "'\"" and not any(c.isalnum() for c in value[index + 1 :]):
            return index
    return len(value)


def _mask_pairs(text: str) -> str:
    """Mask the value of each secret-named pair. Scanning resumes right after a key that is not
    a secret, so its value is read as text again ("error: password=x", "dsn: token=y")."""
    parts, position = [], 0
    while match := _PAIR_KEY.search(text, position):
        secret = is_secret_key(match["key"].strip("\"'"))
        value = _PAIR_VALUE.match(text, match.end()) if secret else None
        if value is None:
            parts.append(text[position : match.end("sep")])
            position = match.end("sep")
            continue
        quote = value[0][0] if value[0][0] in ("'", '"') else ""
        parts.append(f"{text[position : match.end()]}{quote}{MASK}{quote}")
        position = (
            _quoted_end(text, value.end()) if quote else match.end() + _unquoted_length(value[0])
        )
    parts.append(text[position:])
    return "".join(parts)
