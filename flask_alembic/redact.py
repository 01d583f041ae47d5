"""Keeping secrets out of output: URLs with passwords hidden, error text scrubbed."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

import sqlalchemy as sa

__all__ = ["MAX_ERROR_CHARS", "describe_exception", "safe_url", "scrub", "url_secrets"]


def safe_url(url: sa.URL) -> str:
    """Render a URL with its password and any password-like query parameters hidden."""
    secret_keys = [key for key in url.query if _is_secret_key(key)]
    query = {key: ("SECRET" if key in secret_keys else value) for key, value in url.query.items()}
    text = url.set(query=query).render_as_string(hide_password=True)
    for key in secret_keys:  # after rendering, so the stars are not URL-encoded
        text = text.replace(f"{key}=SECRET", f"{key}=***")
    return text


def url_secrets(url: sa.URL) -> tuple[str, ...]:
    """Every spelling of the secrets in ``url``, for scrubbing error text."""
    values: list[str] = []
    if url.password:
        values.append(str(url.password))
    for key, value in url.query.items():
        if _is_secret_key(key):
            values.extend([value] if isinstance(value, str) else value)
    spelled: set[str] = set()
    for value in values:
        if value:
            spelled.update(
                {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
            )
    return tuple(sorted(spelled, key=len, reverse=True))


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return "password" in lowered or "secret" in lowered or lowered in {"passwd", "pwd", "token"}


#: The most characters of an exception's text that are shown: a database may quote a whole
#: statement, or a revision may raise with megabytes of data.
MAX_ERROR_CHARS = 2000


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line describing ``exc``: the database's own message where there is one.

    Text past :data:`MAX_ERROR_CHARS` is cut, with a note saying how much.
    """
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    # Scrubbed before it is cut: a secret cut in two would no longer be found.
    text = scrub(" ".join(text.split()), secrets)
    if len(text) > MAX_ERROR_CHARS:
        cut = len(text) - MAX_ERROR_CHARS
        text = f"{text[:MAX_ERROR_CHARS]}... ({cut:,} more characters cut)"
    return text


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` with ``***`` where it stands as a whole token.

    A secret inside a longer word is left alone: with the password ``e``,
    ``OperationalError`` stays readable, while ``app:e@host``, ``password=e`` and
    ``'e'`` are hidden.
    """
    found: list[tuple[int, int]] = []
    for secret in {secret for secret in secrets if secret}:
        start = text.find(secret)
        while start >= 0:
            end = start + len(secret)
            if _stands_alone(text, start, end):
                found.append((start, end))
            start = text.find(secret, start + 1)
    if not found:
        return text
    pieces: list[str] = []
    done = 0
    for start, end in sorted(found):
        if start >= done:
            pieces += [text[done:start], "***"]
        # Overlapping secrets are hidden as one: no tail of either is left.
        done = max(done, end)
    pieces.append(text[done:])
    return "".join(pieces)


def _stands_alone(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is not part of a longer word.

    A side where the secret itself begins or ends with punctuation has no word to
    continue, so only its letters, digits and underscores at the edges are checked.
    """
    if _is_word(text[start]) and start > 0 and _is_word(text[start - 1]):
        return False
    return not (_is_word(text[end - 1]) and end < len(text) and _is_word(text[end]))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"
