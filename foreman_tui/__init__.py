"""foreman: a terminal supervisor for parallel coding agents, driven by an algorithm map."""

__version__ = "0.1.0"
