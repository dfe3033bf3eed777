"""The refusals of a search: a malformed value, or something not implemented. They
name the parameter, never its value, which may describe a patient."""

from __future__ import annotations

import re

from medledger.errors import InvalidInput

# Parameter names are quoted in refusals; one that is no plausible name is not.
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.]{0,63}(?::[A-Za-z\-]{1,32})?")


class InvalidSearch(InvalidInput):
    """A search parameter's value is malformed, or the query breaks a rule (a result
    parameter given twice, too many values). ``parameter`` names it (or is empty)."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter if _PARAMETER_NAME.fullmatch(parameter) else "(unreadable)"
        self.problem = problem
        super().__init__(f"search parameter {self.parameter}: {problem}" if parameter else problem)


class UnsupportedSearch(InvalidSearch):
    """A search parameter, modifier or prefix this server does not implement."""
