"""hwdistill command-line interface. The libraries are `distill`, `measurements`, `perfmodel`
and `search`; this package only wires them into commands."""

__version__ = "0.1.0"
