"""A sorted (value, id) index kept in order with bisect, readable in both directions."""

from bisect import bisect_left, insort


class SortedIndex:
    """Keys (value, id) ascending, plus (-value, id) for descending order with id ascending ties.

    Values must be integers (timestamps); ties are always broken by id ascending.
    """

    __slots__ = ("asc", "desc")

    def __init__(self, pairs=()):
        self.asc = sorted((value, ident) for value, ident in pairs)
        self.desc = sorted((-value, ident) for value, ident in self.asc)

    def __len__(self) -> int:
        return len(self.asc)

    def add(self, value: int, ident: int) -> None:
        """Insert one key."""
        insort(self.asc, (value, ident))
        insort(self.desc, (-value, ident))

    def remove(self, value: int, ident: int) -> None:
        """Remove one key; KeyError if it is not there."""
        for keys, key in ((self.asc, (value, ident)), (self.desc, (-value, ident))):
            pos = bisect_left(keys, key)
            if pos == len(keys) or keys[pos] != key:
                raise KeyError(key)
            del keys[pos]

    def move(self, old: int, new: int, ident: int) -> None:
        """Change one id's value."""
        if old != new:
            self.remove(old, ident)
            self.add(new, ident)

    def window(self, descending: bool, after: int | None = None) -> tuple[list, int, int]:
        """The key list for an order and the [lo, hi) slice whose values are > after."""
        if descending:
            keys = self.desc
            hi = len(keys) if after is None else bisect_left(keys, (-after,))
            return keys, 0, hi
        keys = self.asc
        lo = 0 if after is None else bisect_left(keys, (after + 1,))
        return keys, lo, len(keys)
