"""Secrets kept out of everything a run writes: the run directory's config.json, recipe.json and the dataset card
share these rules, so a key written into a recipe by mistake is removed the same way everywhere."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

# Parts of a key name (split at "_" and "-") that mark its value as a secret; `max_tokens` or `tokens_per_minute`
# are settings, `hf_token` is not shown.
_SECRET_PARTS = {"key", "apikey", "token", "secret", "secrets", "password", "passwd", "pwd", "pw", "passphrase",
                 "auth", "authorization", "credential", "credentials", "cookie", "cookies", "header", "headers",
                 "bearer", "signature", "sig", "session"}
# Parts that mark a secret only beside another part: `access_code`, `auth_code`, `api_code`.
_SECRET_WITH = {"code": {"access", "auth", "api", "secret", "function"}}
# Query parameters that carry keys in URLs although their names say little: Azure Functions' `code`, a SAS `sig`.
_SECRET_QUERY = {"code", "sig"}
# Our own settings whose names look like secrets.
_SETTINGS = {"token_param"}
_KEY_PREFIX = re.compile(r"^(?:sk-|hf_|ghp_|gho_|github_pat_|xox[abp]-|AKIA|Bearer\s)")
_LONG_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{32,}$")
# Keys whose values are names (a model, a variable, the recipe's name): a long one is a name, not a random token;
# only a key's own prefix (sk-..., hf_...) marks such a value as a key typed in the wrong place.
_NAMES = {"model", "plan_model", "name"}
REMOVED = "(removed)"


def secret_key(key: str) -> bool:
    """A key whose value is a secret; `api_key_env` names a variable, not its value, and is kept (its value is still
    scrubbed should a key have been typed there by mistake)."""
    lowered = key.lower()
    if lowered.endswith("_env") or lowered in _SETTINGS:
        return False
    parts = set(re.split(r"[_\-]", lowered))
    return bool(parts & _SECRET_PARTS) or any(part in parts and parts & others for part, others in _SECRET_WITH.items())


def secret_value(value: str, named: bool = False) -> bool:
    """A value shaped like a key or token (sk-..., hf_..., Bearer ..., a long random string); for a value that
    names something (`named`), only a key's prefix counts."""
    value = value.strip()
    return bool(_KEY_PREFIX.search(value) or (not named and _LONG_TOKEN.fullmatch(value)))


def clean_url(value: str) -> str:
    """Drop user:password@ and query parameters that carry keys from a URL."""
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(f"{k}={v}" for k, v in parse_qsl(parts.query, keep_blank_values=True) if not secret_key(k) and k.lower() not in _SECRET_QUERY)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def without_secrets(value: Any, drop: tuple[str, ...] = ()) -> Any:
    """`value` (a recipe as plain data) with secret-like keys dropped, key-like values replaced by "(removed)" and
    credentials cut out of URLs; keys in `drop` go too. Applying it twice changes nothing, so a saved, scrubbed
    recipe compares equal to the scrubbed recipe it came from."""
    if isinstance(value, dict):
        return {k: _named_value(str(k), v) if _is_name(str(k)) else without_secrets(v, drop)
                for k, v in value.items() if not secret_key(str(k)) and k not in drop}
    if isinstance(value, list):
        return [without_secrets(item, drop) for item in value]
    if isinstance(value, str):
        return REMOVED if secret_value(value) else clean_url(value)
    return value


def _is_name(key: str) -> bool:
    return key in _NAMES or key.lower().endswith("_env")


def _named_value(key: str, value: Any) -> Any:
    return REMOVED if isinstance(value, str) and secret_value(value, named=True) else value
