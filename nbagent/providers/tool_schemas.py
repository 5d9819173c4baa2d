"""Tool schemas shaped per provider: Gemini's limits, OpenAI's strict mode where it changes nothing."""

from __future__ import annotations

from typing import Any

_GEMINI_DROP = frozenset(
    {
        "additionalProperties",
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "definitions",
        "$comment",
        "default",
        "examples",
        "patternProperties",
        "unevaluatedProperties",
        "const",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "title",
        "strict",
    }
)
_GEMINI_FORMATS = frozenset({"enum", "date-time"})


def gemini_schema(schema: Any) -> Any:
    """A JSON schema Gemini's function declarations accept: no ``additionalProperties``/``$schema``
    and the like, string formats only ``enum``/``date-time``, enum values as strings, ``type`` lists
    reduced to one type with ``nullable``."""
    if isinstance(schema, list):
        return [gemini_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _GEMINI_DROP:
            continue
        if key == "format" and (schema.get("type") != "string" or value not in _GEMINI_FORMATS):
            continue
        if key == "enum" and isinstance(value, list):
            out["enum"] = [str(v) for v in value if v is not None]
            if schema.get("type") not in (None, "string"):
                out["type"] = "string"
            continue
        if key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            out["type"] = kinds[0] if kinds else "string"
            if "null" in value:
                out["nullable"] = True
            continue
        if key == "type" and "enum" in schema:
            out.setdefault("type", "string")
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf"):
            out[key] = gemini_schema(value)
        else:
            out[key] = value
    return out


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema`` as it is (every object closed and all its
    properties required), so marking it strict changes nothing but guarantees valid arguments."""
    if isinstance(schema, list):
        return all(strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if any(k in schema for k in ("$ref", "$defs", "allOf", "oneOf", "not", "if", "patternProperties")):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or []) != set(
            properties
        ):
            return False
        return all(strict_compatible(p) for p in properties.values())
    if "items" in schema:
        return strict_compatible(schema["items"])
    if "anyOf" in schema:
        return strict_compatible(schema["anyOf"])
    return True


# Tool schemas are the session's same objects request after request: their shaped form is cached by
# identity (the entry holds the object, so its id cannot be reused while cached).
_TOOL_CACHE: dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any]]] = {}


def shaped_tool(tool: dict[str, Any], mode: str) -> dict[str, Any]:
    key = (id(tool), mode)
    cached = _TOOL_CACHE.get(key)
    if cached is not None and cached[0] is tool:
        return cached[1]
    function = tool.get("function")
    shaped = tool
    if isinstance(function, dict):
        if mode == "gemini":
            params = function.get("parameters")
            fn = {k: v for k, v in function.items() if k != "strict"}
            if params is not None:
                fn["parameters"] = gemini_schema(params)
            shaped = {**tool, "function": fn}
        elif mode == "strict" and "strict" not in function and strict_compatible(function.get("parameters")):
            shaped = {**tool, "function": {**function, "strict": True}}
    if len(_TOOL_CACHE) > 2_000:
        _TOOL_CACHE.clear()
    _TOOL_CACHE[key] = (tool, shaped)
    return shaped
