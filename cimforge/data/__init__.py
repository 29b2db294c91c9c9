"""Data files shipped with cimforge: the reference sentences of the MiniLM sweeps."""
