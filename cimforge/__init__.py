"""cimforge: compute-in-memory transformer accelerator generator and verification bench."""

__version__ = "0.1.0"
