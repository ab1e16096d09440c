"""The generators and saved cohorts as sources, so a study spec can name any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fairmed.data.cohort import Cohort
from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings


class SynthSpec(BaseModel):
    """``{kind: synth, seed: 0, config: {n: 3000, contrast_by_fst: {6: 0.3}}}``"""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synth"] = "synth"
    seed: int = 0
    config: SynthConfig = Field(default_factory=SynthConfig)


class SynthEmbeddingsSpec(BaseModel):
    """``{kind: synth_embeddings, seed: 0, config: {preset: cxr, dim: 1376}}``"""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["synth_embeddings"] = "synth_embeddings"
    seed: int = 0
    config: EmbeddingSynthConfig = Field(default_factory=EmbeddingSynthConfig)


class SavedCohortSpec(BaseModel):
    """A cohort written by ``Cohort.save`` (Parquet, arrays beside it as ``.npy``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cohort"] = "cohort"
    path: Path


def load_synth(spec: SynthSpec) -> Cohort:
    return generate(spec.config, seed=spec.seed)


def load_synth_embeddings(spec: SynthEmbeddingsSpec) -> Cohort:
    return generate_embeddings(spec.config, seed=spec.seed)


def load_saved(spec: SavedCohortSpec) -> Cohort:
    return Cohort.load(spec.path)
