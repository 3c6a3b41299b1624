"""One registry mechanism for everything adaptcli names on the command line. Torch-free.

Methods, dataset sources, export formats and suite benchmarks each keep one :class:`Registry`.
Entries register themselves when their module is imported; a registry with a ``package`` imports
every module of that package's folder the first time it is read, so adding an entry is adding a
file (or, for methods, a folder) and nothing else. The CLI's choices and help texts are read from
the registries, so they can never list fewer entries than exist.

A registry is also open to code outside adaptcli: ``register`` the entry from a module imported
before the CLI runs (see docs/extending.md).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from adaptcli.errors import AdaptError


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Named entries of one kind, listed in ``order`` (then by name), discovered from a package folder.

    ``kind`` names an entry in messages ("method", "export format"); ``summary`` gives an entry's
    one line of help. ``package`` is the dotted name of the folder whose modules register entries
    (None: the entries are registered by the module that builds the registry); with ``inside``,
    every sub-package of the folder is one entry and its module ``inside`` (such as ``config``) is
    what registers it. Unknown names raise ``error``.
    """

    def __init__(self, kind: str, summary: Callable[[T], str], *, package: str | None = None,
                 inside: str | None = None, order: Callable[[T], Any] | None = None,
                 error: type[AdaptError] = AdaptError) -> None:
        self.kind = kind
        self.package = package
        self._summary = summary
        self._inside = inside
        self._order = order
        self._error = error
        self._entries: dict[str, T] = {}
        self._discovered = package is None

    def register(self, entry: T) -> T:
        """Add ``entry`` under ``entry.name``; a second, different entry of that name is a bug."""
        known = self._entries.get(entry.name)
        if known is not None and known != entry:
            raise RuntimeError(f"{self.kind} '{entry.name}' is registered twice")
        self._entries[entry.name] = entry
        return entry

    def discover(self) -> None:
        """Import every module of the package folder once (each registers its own entries)."""
        if self._discovered:
            return
        self._discovered = True  # first: a module imported below may read this registry
        assert self.package is not None
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if self._inside is None and not module.ispkg:
                importlib.import_module(f"{self.package}.{module.name}")
            elif self._inside is not None and module.ispkg:
                importlib.import_module(f"{self.package}.{module.name}.{self._inside}")

    def entries(self) -> list[T]:
        """Every entry, in order."""
        self.discover()
        entries = list(self._entries.values())
        if self._order is None:
            return entries
        order = self._order
        return sorted(entries, key=lambda entry: (order(entry), entry.name))

    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries())

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name is a one-line error with the closest valid one."""
        self.discover()
        entry = self._entries.get(name)
        if entry is None:
            names = self.names()
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self._error(f"unknown {self.kind} '{name}'{hint}: choose one of {', '.join(names)}")
        return entry

    def help(self, separator: str = "; ") -> str:
        """``name: summary`` for every entry, joined by ``separator`` (for help texts)."""
        return separator.join(f"{entry.name}: {self._summary(entry)}" for entry in self.entries())
