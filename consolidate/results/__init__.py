"""Result frames (pandas, unit-bearing columns) and writing them to disk."""
from consolidate.results.frames import Results

__all__ = ["Results"]
