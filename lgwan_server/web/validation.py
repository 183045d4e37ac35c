"""Request bodies are validated against the schemas of the checked-in OpenAPI document.

One source of truth: the contract published at /api/openapi.yaml is the one enforced here.
Schemas set ``additionalProperties: false``, so unknown fields are errors.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..errors import AppError

JSON_TYPES = ("application/json",)
_SURROGATES = re.compile("[\ud800-\udfff]")


class Validator:
    def __init__(self, spec_text: str) -> None:
        self.spec_text = spec_text
        self.spec: dict[str, Any] = yaml.safe_load(spec_text)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        registry: Registry = Registry().with_resource("urn:kakehashi:openapi", resource)
        self._validators: dict[str, Draft202012Validator] = {}
        for name in self.spec["components"]["schemas"]:
            schema = {"$ref": f"urn:kakehashi:openapi#/components/schemas/{name}"}
            self._validators[name] = Draft202012Validator(schema, registry=registry)

    @classmethod
    def load(cls) -> Validator:
        return cls(resources.files("lgwan_server").joinpath("openapi.yaml").read_text(encoding="utf-8"))

    def validate(self, schema: str, value: Any) -> None:
        errors = sorted(self._validators[schema].iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            path = "/".join(str(p) for p in first.absolute_path)
            raise AppError("invalid_request", field=path or "(body)", reason=_reason(first.validator),
                           errors=len(errors))


def _reason(keyword: object) -> str:
    return {"additionalProperties": "unknown_field", "required": "missing_field", "type": "wrong_type",
            "maxLength": "too_long", "minLength": "too_short", "maxItems": "too_many_items",
            "minItems": "too_few_items", "enum": "not_allowed_value", "maximum": "too_large",
            "minimum": "too_small", "pattern": "bad_format"}.get(str(keyword), str(keyword))


async def read_json(request: web.Request, schema: str) -> dict[str, Any]:
    """Parse and validate a JSON body: content type, UTF-8, syntax, then the schema."""
    from ..appkeys import validator_key

    if request.content_type not in JSON_TYPES:
        raise AppError("unsupported_media_type", expected="application/json")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AppError("invalid_utf8") from exc
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:   # ValueError also covers integers over 4300 digits
        raise AppError("invalid_json") from exc
    value = _without_surrogates(value)
    request.app[validator_key].validate(schema, value)
    return value  # type: ignore[no-any-return]


def _without_surrogates(value: Any) -> Any:
    """Drop lone surrogates (reachable only through JSON \\u escapes) from every string and key.

    They cannot be encoded as UTF-8, so SQLite and argon2 would fail on them; textsafe drops them
    from message text for the same reason, and this applies that rule to every field.
    """
    if isinstance(value, str):
        return _SURROGATES.sub("", value) if _SURROGATES.search(value) else value
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def is_ascii_int(raw: str, max_digits: int = 18) -> bool:
    """Only 0-9: str.isdigit() also accepts "²", "١" and "１", which int() rejects or silently reads."""
    return raw.isascii() and raw.isdigit() and len(raw) <= max_digits


def query_int(request: web.Request, name: str, default: int | None = None, *, minimum: int = 0,
              maximum: int = 2**62) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not is_ascii_int(raw, 19) or not (minimum <= int(raw) <= maximum):
        raise AppError("invalid_request", field=name, reason="bad_format")
    return int(raw)


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not is_ascii_int(raw):
        raise AppError("not_found")
    return int(raw)
