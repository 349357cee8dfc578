"""Settings declared once per field: every config dataclass (the split's, each model's, the
cold-start's, the funnel's) builds its fields with :func:`option`, which carries the field's
help, plain-words label and allowed ``choices`` or ``bounds``. :func:`field_specs` reads them
for both front ends (the CLI turns every field into a flag, the app into a widget) and
:func:`check_fields` validates against them, so a new knob is declared in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from recsys.checks import check_choice, check_range

MAX_SEED = 2**32 - 1  # numpy and torch both take seeds in 0 .. 2**32 - 1


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` documents it for the CLI, the app and the reader;
    ``extra`` may declare ``label`` (its name in plain words for forms), ``choices`` (the
    allowed values) and ``bounds`` ((low, high), inclusive)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class FieldSpec:
    """One config field as a front end draws it: a CLI flag or a form widget."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    label: str
    bounds: tuple[float, float] | None = None


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def field_specs(cls: type, defaults: Any = None,
                model_help: Mapping[str, str] | None = None) -> list[FieldSpec]:
    """One :class:`FieldSpec` per field of config class ``cls``: the one reading of the
    declarations for the CLI and the form. ``defaults`` (an instance, e.g.
    ``TrainConfig.for_model("mf-mse")``) overrides the declared defaults; ``model_help`` (a
    model's ``setting_help``) replaces the help of the fields whose use that model explains."""
    specs = []
    for f in fields(cls):
        kind = f.type if isinstance(f.type, type) else _KINDS.get(str(f.type), str)
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not MISSING else None)
        help_text = (model_help or {}).get(f.name, f.metadata.get("help", ""))
        specs.append(FieldSpec(f.name, kind, default, help_text, f.metadata.get("choices"),
                               f.metadata.get("label", f.name.replace("_", " ")),
                               f.metadata.get("bounds")))
    return specs


def check_fields(config: Any) -> None:
    """Raises ValueError, naming the field, for a value outside its declared ``choices`` or
    ``bounds``: the one validation of every config's declared fields (a field whose default
    is None may also be None)."""
    for spec in field_specs(type(config)):
        value = getattr(config, spec.name)
        if value is None and spec.default is None:
            continue
        if spec.choices is not None:
            check_choice(spec.name, value, spec.choices)
        if spec.bounds is not None:
            check_range(spec.name, value, *spec.bounds)


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict (what ``config.json`` and job files hold)."""
    return asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Builds a config from a dict (a saved run's or job's), ignoring unknown keys
    (older/newer runs) with defaults; a class with a ``migrate_values`` classmethod first
    rewrites values saved by older versions (mf-als's old lambda, for one)."""
    migrate = getattr(cls, "migrate_values", None)
    if migrate is not None:
        values = migrate(values)
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})
