"""Settings files: YAML read into pydantic models, every problem listed with its file and line.

Why one loader: the task file, the training configs and the price table were each read by a
YAML -> pydantic -> problems routine of their own, and only the task file's kept line numbers.
Now all three use `load_yaml_model` (or `read_yaml` + `validate`, for the task file, which goes
on to read its data files and adds their problems to the same list). `Strict` is the base of
every model read from a file or written to disk: an unknown key is an error, not a silent
default.

    >>> class Settings(Strict):
    ...     epochs: int = 1
    >>> validate(Settings, {"epoch": 2}, Path("x.yaml"), None)[1][0].message
    "unknown setting 'epoch'; did you mean 'epochs'?"
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from compoundai.errors import Problem, UserInputError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """A pydantic model that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")


def read_yaml(path: Path, what: str = "settings") -> tuple[dict[str, Any], yaml.Node | None]:
    """The mapping in a YAML file and its node tree (for line numbers); a user error naming
    the file (and line) when it is missing, not UTF-8, not YAML, or not a mapping."""
    if not path.is_file():
        raise UserInputError(f"{what} file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError([Problem("not UTF-8 text", file=str(path))]) from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = getattr(exc, "problem", None) or str(exc)
        raise UserInputError([Problem(f"invalid YAML: {msg}", file=str(path), line=line)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserInputError([Problem(f"expected a mapping of {what}", file=str(path))])
    return raw, node


def validate(
    model: type[M], raw: dict[str, Any], path: Path, node: yaml.Node | None
) -> tuple[M | None, list[Problem]]:
    """`model` validated from `raw`, or None and one problem per error, each at its line."""
    try:
        return model.model_validate(raw), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = f"unknown setting {loc[-1]!r}" + _suggest(model, loc)
            problems.append(
                Problem(
                    message,
                    file=str(path),
                    line=line_of(node, loc),
                    field=".".join(str(p) for p in loc),
                )
            )
        return None, problems


def _suggest(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """`; did you mean 'x'?` for a misspelt key, from the fields of the model at `loc`."""
    target: Any = model
    for key in loc[:-1]:
        fields = getattr(target, "model_fields", None)
        if not fields or key not in fields:
            return ""
        target = _model_of(fields[key].annotation)
        if target is None:
            return ""
    fields = getattr(target, "model_fields", {}) or {}
    names = [f.alias or name for name, f in fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(sorted(names))}"


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation (`Model`, `Model | None`), or None."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def load_yaml_model(path: str | Path, model: type[M], what: str = "settings") -> M:
    """Read and validate a YAML settings file; raise `UserInputError` listing every problem."""
    path = Path(path)
    raw, node = read_yaml(path, what)
    value, problems = validate(model, raw, path, node)
    if value is None:
        raise UserInputError(problems)
    return value


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if getattr(k, "value", None) == key]
            if not match:
                return line
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line
