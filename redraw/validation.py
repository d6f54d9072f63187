"""pydantic-core validators for plain dataclasses, and field errors without values.

The COS record and the configuration are dataclasses validated by pydantic-core
(pydantic's engine) directly: the ``BaseModel`` machinery costs more at cold
start than all of redraw's own code, and these paths need none of it. The
request models of the HTTP and direct paths (``request.py``) are BaseModels.

The schema is a typed-dict schema whose result builds the dataclass, not
pydantic-core's dataclass schema: the same fields, defaults, errors and error
locations, but building a dataclass validator pages in about 1 MB more of
pydantic-core's native code (peak RSS of a COS cold start, measured).
"""
from __future__ import annotations

import re
from dataclasses import MISSING, fields
from typing import Any, Callable, Dict, List, Optional

from pydantic_core import PydanticCustomError, SchemaValidator
from pydantic_core import core_schema as cs

_SUBFIELD = re.compile(r"^([A-Za-z]+): (.+)$")
FIELD_SHOWN = 64  # characters of a field name errors show: unknown keys are submitted text


def dataclass_schema(cls: type, schemas: Dict[str, Any], alias: Optional[Callable[[Any], str]] = None,
                     extra: str = "ignore") -> Any:
    """The core schema validating a dict into ``cls`` (a frozen dataclass); ``schemas`` per field name,
    defaults from the dataclass, unknown keys ignored (``extra="forbid"``: refused), an instance of
    ``cls`` accepted as it is."""
    typed_fields = {}
    for f in fields(cls):
        schema, required = schemas[f.name], True
        if f.default is not MISSING:
            schema, required = cs.with_default_schema(schema, default=f.default), False
        elif f.default_factory is not MISSING:
            schema, required = cs.with_default_schema(schema, default_factory=f.default_factory), False
        typed_fields[f.name] = cs.typed_dict_field(schema, required=required,
                                                   validation_alias=alias(f) if alias else None)

    def build(value: Any, handler: cs.ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):  # the dataclass schema's error, word for word
            raise PydanticCustomError("dataclass_type", "Input should be a dictionary or an instance of {class_name}",
                                      {"class_name": cls.__name__})
        return cls(**handler(value))

    return cs.no_info_wrap_validator_function(
        build, cs.typed_dict_schema(typed_fields, extra_behavior=extra))  # type: ignore[arg-type]


def validator(schema: Any) -> SchemaValidator:
    """The compiled validator; its errors' text never shows the input (the setting is the validator's:
    pydantic-core ignores it inside a schema)."""
    return SchemaValidator(schema, cs.CoreConfig(hide_input_in_errors=True))


def field_errors(exc: Any, prefix: str = "") -> List[dict]:
    """Turn a pydantic ValidationError into ``[{"field", "problem"}]`` without any input values."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(p) for p in err.get("loc", ())]
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            problem = "unknown field"
        elif kind == "missing":
            problem = "field required"
        else:
            problem = str(err.get("msg", "invalid value"))
            if problem.startswith("Value error, "):
                problem = problem[len("Value error, "):]
            problem = re.sub(r" or instance of \w+", "", problem)
            sub = _SUBFIELD.match(problem)
            if sub:  # a model-level check naming its field: "FileId: required when ..."
                loc.append(sub.group(1))
                problem = sub.group(2)
        name = ".".join([prefix] * bool(prefix) + loc) or "(body)"
        out.append({"field": shown_field(name), "problem": problem})
    return out


def shown_field(name: str) -> str:
    """A field name as errors show it: its first ``FIELD_SHOWN`` characters, then "…"."""
    return name if len(name) <= FIELD_SHOWN else name[:FIELD_SHOWN] + "…"
