"""A small JSON Schema validator for the model catalog (no ``jsonschema`` dependency).

It understands the subset of JSON Schema that ``Resources/Models/catalog.schema.json`` uses: ``type`` (one
name or a list), ``required``, ``properties``, ``items``, ``enum``, ``pattern``, ``minimum``, ``maximum``,
``exclusiveMinimum``, ``minItems``, ``maxItems``, ``minLength`` and local references (``{"$ref": "#/$defs/x"}``).
Any other keyword is ignored. The custom annotation ``x-expected`` words a failed ``pattern`` for people
("64 hex characters (0-9, a-f)") instead of printing the regular expression.

Usage::

    problems = validate({"file": {"sha256": "xyz"}}, schema["$defs"]["card"], root=schema)
    for problem in problems:
        print(problem)            # field 'file.sha256' must be 64 hex characters (0-9, a-f), got 'xyz'

Each problem carries the path of the offending value (``problem.path``, a tuple of keys and indices) so a
caller can say which catalog entry it belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple, Union

PathPart = Union[str, int]

# A value quoted in a message is cut to this many characters so a message stays one readable line.
MAX_QUOTED_CHARS = 60

_TYPE_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@dataclass(frozen=True)
class Problem:
    """One way an instance breaks the schema: where (``path``) and what is wrong (``message``)."""

    path: Tuple[PathPart, ...]
    message: str

    @property
    def field(self) -> str:
        """The path written as people read it: ``labels[0].terminology.type.code``."""
        return format_path(self.path)

    def __str__(self) -> str:
        return f"field '{self.field}' {self.message}" if self.path else self.message


def format_path(path: Tuple[PathPart, ...]) -> str:
    """``("labels", 0, "value")`` -> ``labels[0].value``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def quote(value: Any) -> str:
    """A short printable form of a JSON value for an error message."""
    text = repr(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 3] + "..."


def _is_type(value: Any, name: str) -> bool:
    # bool is a subclass of int in Python but not a number in JSON.
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    raise ValueError(f"the schema names an unknown type {name!r}")


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = schema.get("$ref")
    if reference is None:
        return schema
    if not reference.startswith("#/"):
        raise ValueError(f"only local schema references are supported, got {reference!r}")
    target: Any = root
    for key in reference[2:].split("/"):
        target = target[key]
    return _resolve(target, root)


def validate(
    instance: Any,
    schema: Mapping[str, Any],
    *,
    root: Optional[Mapping[str, Any]] = None,
    path: Tuple[PathPart, ...] = (),
) -> List[Problem]:
    """Return every problem of ``instance`` against ``schema`` (empty when it is valid).

    ``root`` is the whole schema document that ``$ref`` pointers refer to (default: ``schema`` itself).
    Children of a value with the wrong type are not inspected, so one mistake gives one problem.
    """
    root = schema if root is None else root
    schema = _resolve(schema, root)
    problems: List[Problem] = []

    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_is_type(instance, name) for name in names):
            wanted = " or ".join(_TYPE_NAMES[name] for name in names)
            return [Problem(path, f"must be {wanted}, got {quote(instance)}")]

    if "enum" in schema and instance not in schema["enum"]:
        choices = ", ".join(quote(choice) for choice in schema["enum"])
        problems.append(Problem(path, f"must be one of {choices}, got {quote(instance)}"))

    if isinstance(instance, str):
        if "minLength" in schema and len(instance) < schema["minLength"]:
            problems.append(Problem(path, "must not be empty" if schema["minLength"] == 1 else
                                    f"must have at least {schema['minLength']} characters"))
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            wanted = schema.get("x-expected", f"match the pattern {schema['pattern']}")
            problems.append(Problem(path, f"must be {wanted}, got {quote(instance)}"))

    if _is_type(instance, "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            problems.append(Problem(path, f"must be at least {schema['minimum']}, got {quote(instance)}"))
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            problems.append(Problem(path, f"must be greater than {schema['exclusiveMinimum']}, got {quote(instance)}"))
        if "maximum" in schema and instance > schema["maximum"]:
            problems.append(Problem(path, f"must be at most {schema['maximum']}, got {quote(instance)}"))

    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            problems.append(Problem(path, f"must have at least {schema['minItems']} items, got {len(instance)}"))
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            problems.append(Problem(path, f"must have at most {schema['maxItems']} items, got {len(instance)}"))
        if "items" in schema:
            for index, item in enumerate(instance):
                problems.extend(validate(item, schema["items"], root=root, path=path + (index,)))

    if isinstance(instance, Mapping):
        for key in schema.get("required", ()):
            if key not in instance:
                problems.append(Problem(path + (key,), "is missing"))
        for key, child in schema.get("properties", {}).items():
            if key in instance:
                problems.extend(validate(instance[key], child, root=root, path=path + (key,)))
    return problems
