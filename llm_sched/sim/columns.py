"""Row sequences read from columns: a million jobs, outcomes or events without a million Python objects.

A trace of a million jobs makes millions of Python objects if each job, outcome and event is one
(a gigabyte and more); here they are numpy columns, and the sequences below make the tuples only
when someone reads them. Columns are converted a slice at a time, to Python ints and floats. The
sequences compare equal to the tuples they stand for and pickle as such.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import eq
from typing import TYPE_CHECKING, TypeVar, overload

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

SLICE = 65_536


class Column:
    """One column of a row sequence: ``part(a, b)`` the values of rows [a, b) as a list, ``at(i)`` one."""

    __slots__ = ()

    def part(self, a: int, b: int) -> list[object]:
        raise NotImplementedError

    def at(self, i: int) -> object:
        raise NotImplementedError

    def distinct(self) -> set[object]:
        """The values the column holds."""
        return set(self.part(0, self.size()))

    def size(self) -> int:
        raise NotImplementedError


class Numbers(Column):
    """A numpy column, read as Python ints or floats (``whole``: floats that are whole read as int,
    as the SWF reader gives them)."""

    __slots__ = ("values", "whole")

    def __init__(self, values: np.ndarray, whole: bool = False) -> None:
        self.values = values
        self.whole = whole

    def size(self) -> int:
        return len(self.values)

    def part(self, a: int, b: int) -> list[object]:
        chunk = self.values[a:b]
        return whole_numbers(chunk) if self.whole else chunk.tolist()

    def at(self, i: int) -> object:
        value = self.values[i].item()
        return int(value) if self.whole and value.is_integer() else value


class Same(Column):
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def distinct(self) -> set[object]:
        return {self.value}

    def part(self, a: int, b: int) -> list[object]:
        return [self.value] * (b - a)

    def at(self, i: int) -> object:
        return self.value


class Listed(Column):
    __slots__ = ("values",)

    def __init__(self, values: Sequence[object]) -> None:
        self.values = values

    def size(self) -> int:
        return len(self.values)

    def part(self, a: int, b: int) -> list[object]:
        return list(self.values[a:b])

    def at(self, i: int) -> object:
        return self.values[i]


class Coded(Column):
    """Small int codes into a table of values (the pools a job ran on)."""

    __slots__ = ("codes", "names")

    def __init__(self, codes: np.ndarray, names: Sequence[object]) -> None:
        self.codes = codes
        self.names = names

    def size(self) -> int:
        return len(self.codes)

    def part(self, a: int, b: int) -> list[object]:
        return list(map(self.names.__getitem__, self.codes[a:b].tolist()))

    def at(self, i: int) -> object:
        return self.names[int(self.codes[i])]


def whole_numbers(values: np.ndarray) -> list[float]:
    """A float column as a list, whole values as int (``_t``'s and the SWF reader's convention)."""
    import numpy as np

    if bool(np.isfinite(values).all()):  # inf (no walltime) has no int64: cast only finite columns
        ints = values.astype(np.int64)
        if bool((ints == values).all()):
            return ints.tolist()
    return [int(v) if v.is_integer() else v for v in values.tolist()]


class FrozenRows(Sequence[T]):
    """A read-only sequence equal to the tuple of its items (compared, hashed and pickled as one)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, (tuple, FrozenRows)):
            return NotImplemented  # as a tuple: not equal to a list
        return len(self) == len(other) and all(map(eq, self, other))

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __reduce__(self) -> tuple[object, ...]:
        return (tuple, (tuple(self),))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self):,} items>"


class Rows(FrozenRows[T]):
    """Rows (NamedTuples made by ``make`` from a tuple) of equally long columns."""

    __slots__ = ("_make", "_columns", "_n")

    def __init__(self, make: Callable[[tuple[object, ...]], T], columns: Sequence[Column], n: int) -> None:
        self._make = make
        self._columns = tuple(columns)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[T]:
        make, columns, n = self._make, self._columns, self._n
        for a in range(0, n, SLICE):
            b = min(n, a + SLICE)
            yield from map(make, zip(*[c.part(a, b) for c in columns]))

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        i = index + self._n if index < 0 else index
        if not 0 <= i < self._n:
            raise IndexError("row index out of range")
        return self._make(tuple(c.at(i) for c in self._columns))
