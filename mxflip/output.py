"""How this process writes for people: colour and quietness (the ``mxflip`` group's
``--color`` and ``--quiet``, and ``NO_COLOR``).

A tiny module without rich, so that the group can set it before any command runs;
:mod:`mxflip.render.common` reads it when it builds a console.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOR_CHOICES = ("auto", "always", "never")


@dataclass(frozen=True)
class OutputSettings:
    #: ``auto``: colour on a terminal unless ``NO_COLOR`` is set; ``always``; ``never``.
    color: str = "auto"
    #: Print nothing for people (tables, progress); errors and ``--json`` still appear.
    quiet: bool = False


_current = OutputSettings()


def configure(*, color: str = "auto", quiet: bool = False) -> None:
    global _current
    if color not in COLOR_CHOICES:
        raise ValueError(f"color must be one of {', '.join(COLOR_CHOICES)}")
    _current = OutputSettings(color=color, quiet=quiet)


def settings() -> OutputSettings:
    return _current
