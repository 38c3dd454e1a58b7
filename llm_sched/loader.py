"""One way to read the files a user hands the program: YAML settings, ``.env``, prompt templates, traces.

Every file is untrusted input. The readers here refuse what would otherwise fail far from its cause
(a traceback, a ``RecursionError``, an integer SQLite cannot store, a machine-sized allocation)
with a :class:`~llm_sched.errors.UserError` whose first line names the file:

- :func:`read_text`: UTF-8 (a leading byte-order mark is dropped), at most ``limit`` bytes; a missing,
  unreadable or directory path, or bytes that are not UTF-8 (with the byte offset), is a clear error.
- :func:`load_yaml`: :func:`read_text`, then the C safe loader, with nesting depth, alias expansion
  and integer range bounded, and a mapping of fields at the top level (an empty file is an error).
- :func:`validated`: a Pydantic model from that mapping; every problem listed as ``field: message``
  with the value given and what is allowed.
- :func:`read_lines`: a line stream for large files (traces), gzip or plain by their magic bytes,
  with damaged or truncated gzip data and over-long lines reported by line number.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import stat
import types
import typing
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from llm_sched.errors import UserError

MB = 1024 * 1024
CONFIG_LIMIT = 10 * MB  # the shipped settings files are a few kilobytes; 10 MB is no hand-written file
MAX_DEPTH = 50  # the deepest shipped file nests 7 levels
MAX_ALIAS_VALUES = 1_000_000  # values YAML aliases may add in all: enough for reuse, not for a "billion laughs"
MAX_LINE = 64 * 1024  # characters in one line of a line-oriented file (an SWF job line is ~100)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what SQLite and msgpack store; run seeds and counts go there

_GZIP_MAGIC = b"\x1f\x8b"
M = TypeVar("M", bound=BaseModel)


class FileMissing(UserError):
    """The path does not exist; callers with a better hint (record a cassette...) catch this one."""


# --- bytes and text -----------------------------------------------------------------------------


def _open(path: Path, what: str, error: type[UserError]) -> IO[bytes]:
    """Open a regular file for reading. Non-blocking, so that a FIFO is refused instead of waiting
    forever for a writer: a FIFO or a device (/dev/zero) is no settings file or trace."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileMissing(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise error(f"{path}: is a directory, not a file")
        raise error(f"{path}: is not a regular file (a device, pipe or socket); expected a {what} file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_bytes(path: Path, what: str, limit: int = CONFIG_LIMIT, *, error: type[UserError] = UserError) -> bytes:
    """The file's bytes, refusing more than ``limit`` (read no further than that: /dev/zero is refused too)."""
    with _open(path, what, error) as handle:
        try:
            data = handle.read(limit + 1)
        except OSError as exc:  # a directory on some systems, a disk error
            raise error(f"{path}: cannot read the {what} file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(f"{path}: the {what} file is larger than the {_size(limit)} limit")
    return data


def decode_utf8(data: bytes, path: Path | str, *, error: type[UserError] = UserError) -> str:
    """``data`` as UTF-8 text; an editor's byte-order mark is dropped, an invalid byte named by offset."""
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start + skip}); "
                    "save it as UTF-8") from None


def read_text(path: Path, what: str, limit: int = CONFIG_LIMIT, *, error: type[UserError] = UserError) -> str:
    """The file as UTF-8 text of at most ``limit`` bytes; any problem is an ``error`` naming the file.

    A missing file raises :class:`FileMissing` (a ``UserError``), whatever ``error`` is.
    """
    return decode_utf8(read_bytes(path, what, limit, error=error), path, error=error)


def _size(limit: int) -> str:
    return f"{limit // MB} MB" if limit % MB == 0 else f"{limit:,} bytes"


# --- YAML ---------------------------------------------------------------------------------------


def load_yaml(path: Path, what: str, limit: int = CONFIG_LIMIT) -> dict[str, Any]:
    """The file's YAML document, which must be a mapping of fields (an empty file is an error)."""
    import yaml

    text = read_text(path, what, limit)
    try:
        _check_structure(text, path)
        data = yaml.load(text, Loader=yaml.CSafeLoader)  # noqa: S506 - the C safe loader
    except yaml.YAMLError as exc:
        raise UserError(_yaml_problem(exc, path)) from None
    if data is None:
        raise UserError(f"{path}: the {what} file is empty (or only comments); "
                        f"expected a mapping of {what} fields, one 'name: value' per line")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of {what} fields at the top level, found {_kind(data)}")
    _check_integers(data, path)
    return data


def _yaml_problem(exc: Exception, path: Path) -> str:
    """One line: where (line and column, or character offset) and what the parser could not accept."""
    import yaml

    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML forbids, such as NUL
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        return f"{path}: not valid YAML: {exc.reason} (U+{code:04X} near byte {exc.position})"
    mark = getattr(exc, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    if problem == "exceeded maximum nesting depth":  # libyaml's own limit, met while scanning ahead
        return f"{path}{where}: nested deeper than {MAX_DEPTH} levels"
    return f"{path}{where}: not valid YAML: {problem}"


def _kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}
    return kinds.get(type(value), type(value).__name__)


class _Frame:
    """An open collection while the events are scanned: its anchor, its values, its deepest child."""

    __slots__ = ("anchor", "values", "height")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.values = 0
        self.height = 0


def _check_structure(text: str, path: Path) -> None:
    """Refuse deep nesting, recursive aliases and alias bombs from the parser's events, before any
    object is built: the composer recurses once per level, and a recursive or exponential structure
    would reach Pydantic and ``json.dumps``. The event parser itself keeps an explicit stack."""
    import yaml

    stack: list[_Frame] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (height, values) of the finished node
    repeated = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Frame(event.anchor))
            if len(stack) > MAX_DEPTH:
                raise UserError(f"{_at(path, event)}: nested deeper than {MAX_DEPTH} levels")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            anchor, height, values = frame.anchor, frame.height + 1, frame.values + 1
        elif isinstance(event, yaml.ScalarEvent):
            anchor, height, values = event.anchor, 0, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, (height, values) = None, _alias(event, stack, anchors, path)
            repeated += values
            if repeated > MAX_ALIAS_VALUES:
                raise UserError(f"{_at(path, event)}: YAML aliases repeat more than {MAX_ALIAS_VALUES:,} values")
        else:  # stream and document events
            continue
        if anchor is not None:
            anchors[anchor] = (height, values)
        if stack:  # the finished node counts in the collection that holds it
            stack[-1].values += values
            stack[-1].height = max(stack[-1].height, height)


def _alias(event: Any, stack: list[_Frame], anchors: dict[str, tuple[int, int]], path: Path) -> tuple[int, int]:
    """The height and value count an alias stands for, refusing one that recurses or nests too deep."""
    if any(frame.anchor == event.anchor for frame in stack):
        raise UserError(f"{_at(path, event)}: the alias *{event.anchor} is inside the collection it names; "
                        "recursive structures are not allowed")
    height, values = anchors.get(event.anchor, (0, 1))  # an undefined alias: the loader reports it
    if len(stack) + height > MAX_DEPTH:
        raise UserError(f"{_at(path, event)}: the alias *{event.anchor} nests deeper than {MAX_DEPTH} levels")
    return height, values


def _at(path: Path, event: Any) -> str:
    mark = event.start_mark
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)


def _check_integers(data: dict[str, Any], path: Path) -> None:
    """Refuse integers beyond 64 bits wherever they are: they overflow SQLite and msgpack further on.
    (Models bound their own fields more tightly; this covers every field, named by its dotted path.)"""
    pending: list[tuple[str, Any]] = [(str(key), value) for key, value in data.items()]
    while pending:
        where, value = pending.pop()
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise UserError(f"{path}: {where}: {_shown(value)} does not fit in 64 bits; "
                            f"integers must be from {INT64_MIN:,} to {INT64_MAX:,}")
        if isinstance(value, dict):
            pending.extend((f"{where}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{where}.{i}", item) for i, item in enumerate(value))


# --- validation ---------------------------------------------------------------------------------


def validated(model: type[M], data: Any, where: Path | str, what: str,
              label: Callable[[str], str] | None = None) -> M:
    """``model`` from ``data``, or a ``UserError`` on one line: "``where``: invalid ``what``: " and the
    problems, separated by "; ".

    ``label`` may decorate a field's dotted name (the experiment adds the flag that sets it).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{where}: invalid {what}: " + "; ".join(problems(exc, model, label))) from None


# pydantic names the branches of a union in the location ("function-after[_check(), NodeGroup]",
# "list[...]"): not a field a user wrote, so they are left out of the dotted name.
_BRANCH = re.compile(r"[\[\]()]")
# When a value fits one branch of a union but breaks a rule there, the other branches' "is not a
# list / a mapping" errors follow from the choice of branch and only confuse.
_WRONG_BRANCH = frozenset({"list_type", "dict_type", "model_type", "model_attributes_type", "tuple_type"})


def problems(error: ValidationError, model: type[BaseModel], label: Callable[[str], str] | None = None) -> list[str]:
    """One entry per problem: the dotted field, what is wrong, the value given, what is allowed.

    A list's own error ("at least 2 items") is left out when one of its items has an error: it
    follows from that one (a list of two whose second item is refused is a list of one).
    """
    items = error.errors(include_url=False)
    branched = [any(isinstance(p, str) and _BRANCH.search(p) for p in item["loc"]) for item in items]
    if any(not (b and item["type"] in _WRONG_BRANCH) for item, b in zip(items, branched)):
        items = [item for item, b in zip(items, branched) if not (b and item["type"] in _WRONG_BRANCH)]
    for item in items:
        item["loc"] = tuple(p for p in item["loc"] if not (isinstance(p, str) and _BRANCH.search(p)))
    inner = {tuple(item["loc"][:k]) for item in items for k in range(len(item["loc"]))}
    lines = [_line(item, model, label) for item in items if tuple(item["loc"]) not in inner or not item["loc"]]
    return list(dict.fromkeys(lines))


def _line(item: ErrorDetails, model: type[BaseModel], label: Callable[[str], str] | None) -> str:
    loc = tuple(item["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    kind = item["type"]
    msg = item["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        msg = "unknown field" + (f"; allowed fields: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        msg = "required field is missing"
    elif kind != "value_error" and "input" in item:
        bounds = _range_at(model, loc)  # the whole range, where pydantic names only the bound crossed
        msg = f"{msg} (got {_shown(item['input'])}{'; allowed: ' + bounds if bounds else ''})"
    return f"{label(field) if label else field}: {msg}"


def _shown(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else f"{text[:width - 3]}..."


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    target, _ = _resolve(model, loc)
    return list(target.model_fields) if isinstance(target, type) and issubclass(target, BaseModel) else []


def _range_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The field's allowed range as words ("from 1 to 100", "more than 0 and at most 1,000"), or ""."""
    _, constraints = _resolve(model, loc)
    bounds = {name: _number(getattr(c, name)) for c in constraints for name in _BOUND_WORDS if hasattr(c, name)}
    if "ge" in bounds and "le" in bounds and len(bounds) == 2:
        return f"from {bounds['ge']} to {bounds['le']}"
    return " and ".join(f"{_BOUND_WORDS[name]} {value}" for name, value in bounds.items())


_BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else repr(value)


def _resolve(model: Any, loc: tuple[int | str, ...]) -> tuple[Any, list[Any]]:
    """The type at ``loc`` inside ``model`` and the constraints (``Ge``, ``Le``...) that apply to it;
    ``(None, [])`` where the path leaves what can be told (a union's branch, a free-form dict)."""
    current, constraints = _unwrap(model, [])
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            info = current.model_fields[str(part)]
            current, constraints = _unwrap(info.annotation, list(info.metadata))
        elif isinstance(part, int) and typing.get_origin(current) in (list, tuple):
            items = [arg for arg in typing.get_args(current) if arg is not Ellipsis]
            if len(items) != 1:
                return None, []
            current, constraints = _unwrap(items[0], [])
        else:
            return None, []
    return current, constraints


def _unwrap(annotation: Any, constraints: list[Any]) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` (keeping its constraints) and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                constraints.extend(getattr(item, "metadata", [item]))
        elif origin in (typing.Union, types.UnionType):
            arms = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(arms) != 1:
                return annotation, constraints
            annotation = arms[0]
        else:
            return annotation, constraints


# --- line streams (traces) ----------------------------------------------------------------------


def read_lines(path: Path, what: str, *, max_line: int = MAX_LINE) -> Iterator[str]:
    """The file's lines (without line ends), gunzipped when it starts with the gzip magic bytes.

    Bytes that are not UTF-8 become U+FFFD rather than an error: the callers parse numbers, which
    then fail naming the line, and free-text comments (old logs carry Latin-1 names) stay readable.
    Damaged or truncated gzip data, a disk error, and a line longer than ``max_line`` characters are
    ``UserError``\\ s naming the file and the line. Close the generator (or exhaust it) to close the file.
    """
    raw = _open(path, what, UserError)
    lineno = 0
    try:
        binary: IO[bytes] = raw
        if raw.peek(2)[:2] == _GZIP_MAGIC:  # type: ignore[attr-defined]
            binary = gzip.GzipFile(fileobj=raw)
        with io.TextIOWrapper(binary, encoding="utf-8", errors="replace") as stream:
            while line := stream.readline(max_line + 1):
                lineno += 1
                if len(line) > max_line and not line.endswith("\n"):
                    raise UserError(f"{path}, line {lineno}: longer than {max_line:,} characters; "
                                    f"not a {what} file?")
                yield line.rstrip("\n")
    except EOFError:
        raise UserError(f"{path}: the gzip data ends early, {_after(lineno)} (a truncated download?)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"{path}: damaged gzip data {_after(lineno)} ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} file {_after(lineno)}: {exc.strerror or exc}") from None
    finally:
        raw.close()


def _after(lineno: int) -> str:
    return f"after line {lineno:,}" if lineno else "before the first line"
