"""Experiment configs: strict pydantic models read from YAML, with overrides and one-line errors that
name the dotted key.

Shared by every experiment's config (``rlimm.rl.config``, ``rlimm.lm.config``, ``rlimm.logreg.config``):
subclass :class:`StrictModel`, read a file with :func:`load_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from rlimm.coefficients import check_ratio
from rlimm.errors import ConfigError, RlimmError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are refused and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def distinct_entries(value: list) -> list:
    """A field validator (``field_validator(...)(distinct_entries)``): refuses repeated entries."""
    if len(set(value)) != len(value):
        raise ValueError(f"entries must be distinct, got {value}")
    return value


def _valid_ratio(value: float) -> float:
    try:
        return check_ratio(value)
    except RlimmError as err:  # pydantic reports ValueErrors with the key's name
        raise ValueError(str(err)) from None


#: A config value holding λ as the ratio λ/(1+λ), in [0, 1).
Ratio = Annotated[float, AfterValidator(_valid_ratio)]


def format_validation_error(err: ValidationError) -> str:
    """One line per problem, ``'dotted.key': what is wrong``, joined by ``; ``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] != "value_error" and "input" in e:
            # pydantic's own messages do not repeat the value; our validators' messages do.
            msg = f"{msg} (got {e['input']!r})"
        parts.append(f"'{loc}': {msg}")
    return "; ".join(parts)


def parse_mapping(model: type[M], data: Any, source: str = "<config>") -> M:
    """Validate ``data`` as ``model``, raising :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys ({', '.join(model.model_fields)}), "
            f"got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {format_validation_error(err)}") from None


def load_config(
    model: type[M],
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    replace: dict[str, Any] | None = None,
) -> M:
    """Read a YAML file (no file: every default), merge ``overrides`` into it (nested mappings key by
    key, ``None`` values skipped), put ``replace``'s sections in place of the file's (``None`` values
    skipped), and validate it as ``model``."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<command line>"
    if isinstance(data, dict):
        data = merge_nested(data, overrides or {})
        data.update({k: v for k, v in (replace or {}).items() if v is not None})
    return parse_mapping(model, data, source)


def merge_nested(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``: nested mappings merge key by key, ``None`` values are skipped."""
    out = dict(base)
    for key, value in extra.items():
        if value is None:
            continue
        if isinstance(value, dict):
            base_value = out.get(key)
            merged = merge_nested(base_value if isinstance(base_value, dict) else {}, value)
            if merged or key in out:
                out[key] = merged
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> Any:
    """The parsed contents of a YAML file; a missing file or bad YAML raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
    return data
