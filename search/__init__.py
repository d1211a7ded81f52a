"""Search: the space, our GP surrogate, log-EHVI acquisition and the resumable ask/tell loop."""

from .domain import Dimension, Domain, DomainError
from .gp import GP, GPError, GPSurrogate, Surrogate, fit_gp
from .hypervolume import box_decomposition, hvi, hypervolume, nondominated
from .loop import (RoundInfo, Search, SearchConfig, SearchError, SearchResult, format_round,
                   minimize)
from .pipeline import Pipeline, RunSettings
from .space import DEFAULT_SPACE, Candidate, SearchSpace, SpaceError

__all__ = [
    "Candidate", "DEFAULT_SPACE", "Dimension", "Domain", "DomainError", "GP", "GPError", "GPSurrogate",
    "RoundInfo", "Search", "SearchConfig", "SearchError", "SearchResult", "SearchSpace", "SpaceError",
    "Surrogate", "box_decomposition", "fit_gp", "format_round", "hvi", "hypervolume", "minimize",
    "nondominated", "Pipeline", "RunSettings",
]
