"""A yes/no JSON Schema check compiled to Python closures, for the hot path of request validation.

jsonschema walks a schema per call (descend, evolve, is_type per keyword) and builds error objects
as it goes; for a valid hook request that machinery is most of the cost, and valid requests are
almost all of them. `compile_schema` reads the same schema files once and turns each keyword into a
closure that only answers "valid?". It never produces messages: on False the caller runs jsonschema
for the errors, so messages stay exactly jsonschema's.

The compiler knows only the keywords listed in `_KEYWORDS` and `_ANNOTATIONS`, with the semantics
of jsonschema's Draft 2020-12 validator (tests/unit/test_fast_schema.py checks them against it).
Any other keyword, a malformed keyword value or another dialect raises `NotCompilable`, so a schema
edit can never silently weaken validation: the caller then validates that schema with jsonschema.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from referencing import Registry
from referencing.jsonschema import DRAFT202012

if TYPE_CHECKING:
    from referencing._core import Resolver

Check = Callable[[Any], bool]
DIALECTS = {"https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"}
# Validate nothing (jsonschema ignores them too). `format` is an annotation unless the validator
# was given a format checker; `format_asserted=True` makes it an unknown keyword instead.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_OBJECT_KEYWORDS = ("required", "properties", "additionalProperties", "dependentRequired")
_ARRAY_KEYWORDS = ("items", "minItems", "maxItems")
_STRING_KEYWORDS = ("minLength", "maxLength", "pattern")
_KEYWORDS = frozenset(
    {"type", "const", "enum", "$ref", "if", "then", "else", "format"}
    | set(_OBJECT_KEYWORDS + _ARRAY_KEYWORDS + _STRING_KEYWORDS)
)
# The JSON types with a plain isinstance test (bool is its own type; dict/list exactly as jsonschema).
_CLASSES: dict[str, type] = {
    "object": dict,
    "array": list,
    "string": str,
    "null": type(None),
    "boolean": bool,
}


class NotCompilable(ValueError):
    """The schema uses something this compiler does not implement exactly: use jsonschema for it."""


def compile_schema(schema_id: str, registry: Registry, *, format_asserted: bool = False) -> Check:
    """A function answering whether an instance is valid against the schema `schema_id` in `registry`."""
    # Through ref(), so a schema that refers to itself ("#") reuses this compilation.
    return _Compiler(format_asserted).ref(schema_id, registry.resolver())


def _always(_instance: Any) -> bool:
    return True


def _never(_instance: Any) -> bool:
    return False


class _Compiler:
    """One compilation: remembers $ref targets so a shared or recursive schema is compiled once."""

    def __init__(self, format_asserted: bool) -> None:
        self.format_asserted = format_asserted
        self.done: dict[int, Check] = {}
        self.pending: dict[int, list[Check]] = {}
        self.keep: list[Any] = []  # keeps ref targets alive, so the id() keys above stay unique

    def schema(self, schema: Any, resolver: Resolver) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, Mapping):
            raise NotCompilable(f"a schema must be an object or a boolean, not {schema!r}")
        unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
        if self.format_asserted and "format" in schema:
            unknown.add("format")
        if unknown:
            raise NotCompilable(f"unsupported keyword(s) {sorted(unknown)}")
        if "$schema" in schema and schema["$schema"] not in DIALECTS:
            raise NotCompilable(f"unsupported dialect {schema['$schema']!r}")
        if "$id" in schema:  # refs inside resolve against this schema's own URI
            resolver = resolver.in_subresource(DRAFT202012.create_resource(schema))
        return _all(self.parts(schema, resolver))

    def parts(self, schema: Mapping[str, Any], resolver: Resolver) -> list[Check]:
        """One check per family of keywords, cheapest first; a lone `type` folds into its family."""
        types = _type_names(schema["type"]) if "type" in schema else None
        # With exactly one of these types the family check also rejects every other type, so the
        # separate type test is dropped.
        strict = types[0] if types is not None and len(types) == 1 else None
        parts: list[Check] = []
        families = {
            "object": self.object_check(schema, resolver, strict == "object"),
            "array": self.array_check(schema, resolver, strict == "array"),
            "string": _string_check(schema, strict == "string"),
        }
        if types is not None and strict not in families:
            parts.append(_type_check(types))
        parts.extend(check for check in families.values() if check is not None)
        if "const" in schema:
            parts.append(_const_check(schema["const"]))
        if "enum" in schema:
            parts.append(_enum_check(schema["enum"]))
        if "$ref" in schema:
            parts.append(self.ref(schema["$ref"], resolver))
        if "if" in schema:
            parts.append(self.conditional(schema, resolver))
        else:  # then/else without if do nothing, but must still be keywords we know
            for key in ("then", "else"):
                if key in schema:
                    self.schema(schema[key], resolver)
        return parts

    def ref(self, ref: Any, resolver: Resolver) -> Check:
        if not isinstance(ref, str):
            raise NotCompilable(f"$ref must be a string, not {ref!r}")
        resolved = resolver.lookup(ref)  # by URN through the registry, or a "#/..." pointer
        key = id(resolved.contents)
        if key in self.done:
            return self.done[key]
        if key in self.pending:  # a recursive schema: call through a cell filled in below
            cell = self.pending[key]
            return lambda instance: cell[0](instance)
        self.keep.append(resolved.contents)
        self.pending[key] = cell = [_never]
        check = self.schema(resolved.contents, resolved.resolver)
        cell[0] = self.done[key] = check
        del self.pending[key]
        return check

    def conditional(self, schema: Mapping[str, Any], resolver: Resolver) -> Check:
        if_ = self.schema(schema["if"], resolver)
        then = self.schema(schema.get("then", True), resolver)
        else_ = self.schema(schema.get("else", True), resolver)

        def check(instance: Any) -> bool:
            return then(instance) if if_(instance) else else_(instance)

        return check

    def object_check(self, schema: Mapping[str, Any], resolver: Resolver, strict: bool) -> Check | None:
        """required, properties, additionalProperties and dependentRequired in one pass over a dict."""
        if not any(key in schema for key in _OBJECT_KEYWORDS):
            return _isinstance_check(dict) if strict else None
        required = frozenset(_strings(schema.get("required", []), "required"))
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            raise NotCompilable("properties must be an object")
        known = frozenset(properties)
        # A property whose schema accepts anything needs no look-up at all.
        checks = [(name, self.schema(sub, resolver)) for name, sub in properties.items()]
        checks = [(name, check) for name, check in checks if check is not _always]
        extra = self.schema(schema.get("additionalProperties", True), resolver)
        dependent = _dependent_required(schema.get("dependentRequired", {}))
        missing = object()

        def check(instance: Any) -> bool:
            if not isinstance(instance, dict):
                return not strict
            keys = instance.keys()
            if not keys >= required:
                return False
            for name, valid in checks:
                value = instance.get(name, missing)
                if value is not missing and not valid(value):
                    return False
            for name, needed in dependent:
                if name in instance and not keys >= needed:
                    return False
            return extra is _always or _extras_valid(instance, known, extra)

        return check

    def array_check(self, schema: Mapping[str, Any], resolver: Resolver, strict: bool) -> Check | None:
        """items, minItems and maxItems on a list."""
        if not any(key in schema for key in _ARRAY_KEYWORDS):
            return _isinstance_check(list) if strict else None
        shortest = _count(schema.get("minItems", 0), "minItems")
        longest = _count(schema.get("maxItems", math.inf), "maxItems")
        item = self.schema(schema.get("items", True), resolver)

        def check(instance: Any) -> bool:
            if not isinstance(instance, list):
                return not strict
            if not shortest <= len(instance) <= longest:
                return False
            if item is not _always:
                for value in instance:
                    if not item(value):
                        return False
            return True

        return check


def _all(parts: list[Check]) -> Check:
    if not parts:
        return _always
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda instance: first(instance) and second(instance)

    def check(instance: Any) -> bool:
        # A plain loop: all() over a generator costs a frame per call, and this runs per node.
        for part in parts:  # noqa: SIM110
            if not part(instance):
                return False
        return True

    return check


def _extras_valid(instance: dict[str, Any], known: frozenset[str], extra: Check) -> bool:
    """additionalProperties: every member not named in properties (no patternProperties here)."""
    if extra is _never:
        return instance.keys() <= known
    for name, value in instance.items():  # noqa: SIM110 (a loop is cheaper than all() of a generator)
        if name not in known and not extra(value):
            return False
    return True


def _string_check(schema: Mapping[str, Any], strict: bool) -> Check | None:
    """minLength, maxLength (code points, as len() counts) and pattern (re.search, as jsonschema)."""
    if not any(key in schema for key in _STRING_KEYWORDS):
        return _isinstance_check(str) if strict else None
    shortest = _count(schema.get("minLength", 0), "minLength")
    longest = _count(schema.get("maxLength", math.inf), "maxLength")
    pattern = schema.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise NotCompilable("pattern must be a string")
    search = re.compile(pattern).search if pattern is not None else None

    def check(instance: Any) -> bool:
        if not isinstance(instance, str):
            return not strict
        if not shortest <= len(instance) <= longest:
            return False
        return search is None or search(instance) is not None

    return check


def _isinstance_check(cls: type | tuple[type, ...]) -> Check:
    return lambda instance: isinstance(instance, cls)


def _type_names(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise NotCompilable(f"type must be a type name or a list of them, not {value!r}")
    unknown = set(names) - set(_CLASSES) - {"integer", "number"}
    if unknown:
        raise NotCompilable(f"unknown type(s) {sorted(unknown)}")
    return names


def _type_check(names: list[str]) -> Check:
    """JSON Schema types as jsonschema's Draft 2020-12 type checker defines them."""
    classes = tuple(_CLASSES[name] for name in names if name in _CLASSES)
    if "number" in names:
        numeric: Check | None = _is_number
    elif "integer" in names:
        numeric = _is_integer
    else:
        numeric = None
    if numeric is None:
        return _isinstance_check(classes[0] if len(classes) == 1 else classes)
    if not classes:
        return numeric
    return lambda instance: isinstance(instance, classes) or numeric(instance)


def _is_number(instance: Any) -> bool:
    # bool is an int in Python but not a number in JSON Schema.
    return isinstance(instance, numbers.Number) and not isinstance(instance, bool)


def _is_integer(instance: Any) -> bool:
    # Since draft 6 a float with no fractional part (1.0) is an integer; bool never is.
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


def _const_check(expected: Any) -> Check:
    if isinstance(expected, str):  # jsonschema compares with == as soon as either side is a string
        return lambda instance: instance == expected
    return lambda instance: json_equal(instance, expected)


def _enum_check(options: Any) -> Check:
    if not isinstance(options, list):
        raise NotCompilable("enum must be an array")
    if all(isinstance(option, str) for option in options):
        strings = frozenset(options)
        return lambda instance: isinstance(instance, str) and instance in strings
    return lambda instance: any(json_equal(instance, option) for option in options)


def json_equal(one: Any, two: Any) -> bool:
    """Equality as jsonschema's const/enum see it: 1 == 1.0, but True != 1 and False != 0, at any depth."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(key in two and json_equal(v, two[key]) for key, v in one.items())
    if isinstance(one, bool) or isinstance(two, bool):
        return False  # `one is two` above already matched two equal bools
    return bool(one == two)


def _strings(value: Any, keyword: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NotCompilable(f"{keyword} must be an array of strings")
    return value


def _dependent_required(value: Any) -> list[tuple[str, frozenset[str]]]:
    if not isinstance(value, Mapping):
        raise NotCompilable("dependentRequired must be an object")
    return [(name, frozenset(_strings(needed, "dependentRequired"))) for name, needed in value.items()]


def _count(value: Any, keyword: str) -> int | float:
    if value is math.inf:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NotCompilable(f"{keyword} must be a non-negative integer")
    return value
