"""Data files shipped with cimforge: the reference sentences of the MiniLM sweeps."""

from importlib import resources

REFERENCE_SENTENCES = "minilm_sentences.txt"  # the 30 reference sentences


def reference_sentences() -> list[str]:
    """The packaged reference sentences (non-empty lines, stripped)."""
    text = resources.files(__name__).joinpath(REFERENCE_SENTENCES).read_text("utf-8")
    return [s for s in (line.strip() for line in text.splitlines()) if s]
