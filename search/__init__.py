"""Search: the space, pymoo problems, surrogates and the surrogate-assisted loop."""

from .space import DEFAULT_SPACE, SearchSpace

__all__ = ["DEFAULT_SPACE", "SearchSpace"]
