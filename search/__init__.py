"""Search: the space, our GP surrogate, log-EHVI acquisition and the resumable ask/tell loop."""

from .domain import Dimension, Domain, DomainError
from .gp import GP, GPError, GPSurrogate, Surrogate, fit_gp
from .hypervolume import box_decomposition, hvi, hypervolume, nondominated
from .loop import RoundInfo, Search, SearchConfig, SearchError, SearchResult, minimize
from .space import DEFAULT_SPACE, SearchSpace

__all__ = [
    "DEFAULT_SPACE", "Dimension", "Domain", "DomainError", "GP", "GPError", "GPSurrogate",
    "RoundInfo", "Search", "SearchConfig", "SearchError", "SearchResult", "SearchSpace",
    "Surrogate", "box_decomposition", "fit_gp", "hvi", "hypervolume", "minimize",
    "nondominated",
]
