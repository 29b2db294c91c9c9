"""The base of the streaming units built from a golden spec: the spec is checked at
construction and exposed read-only with its cycle model."""

from __future__ import annotations

from amaranth.lib import wiring

__all__ = ["SpecUnit"]


class SpecUnit(wiring.Component):
    """A component made from a spec of class ``_spec_cls`` (a frozen dataclass of
    :mod:`cimforge.golden`). Members: those given by the subclass.

    Attributes
    ----------
    spec
        The spec it was made from.
    timing
        The spec's cycle model.
    """

    _spec_cls: type

    def __init__(self, spec, members: dict):
        if not isinstance(spec, self._spec_cls):
            raise TypeError(f"spec must be a {self._spec_cls.__name__}, not {spec!r}")
        self._spec = spec
        super().__init__(members)

    @property
    def spec(self):
        return self._spec

    @property
    def timing(self):
        return self._spec.timing
