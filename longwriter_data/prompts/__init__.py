"""Our prompt templates: plain text files beside this module (readable and diffable, as LongWriter keeps them),
read only through `template`. They sit below every layer because synthesis (pools/), AgentWrite (generate/) and
the quality judge (quality/) all use them."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def template(name: str) -> str:
    """The packaged template `name`, e.g. "write_en" for prompts/write_en.txt."""
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def packaged() -> set[str]:
    """The names of every packaged template."""
    return {entry.name.removesuffix(".txt") for entry in resources.files(__name__).iterdir()
            if entry.name.endswith(".txt")}
