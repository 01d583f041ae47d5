"""Keeping secrets out of output: URLs with passwords hidden, error text scrubbed."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

import sqlalchemy as sa

__all__ = ["describe_exception", "safe_url", "scrub", "url_secrets"]


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
    # Longest first, so a secret that contains another is scrubbed whole.
    return tuple(sorted(spelled, key=len, reverse=True))


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return "password" in lowered or "secret" in lowered or lowered in {"passwd", "pwd", "token"}


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line describing ``exc``: the database's own message where there is one."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub(" ".join(text.split()), secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
