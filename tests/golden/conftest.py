"""Fixtures of the golden-model tests that load the real MiniLM."""

from pathlib import Path

import pytest

from cimforge.golden.float_model import load_minilm

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def encoder():
    return load_minilm()


@pytest.fixture(scope="session")
def sentences():
    return [s.strip() for s in (DATA / "minilm_sentences.txt").read_text().splitlines()
            if s.strip()]
