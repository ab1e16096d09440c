"""Generated image *embeddings* with known bias, for the embedding-based studies.

The chest X-ray studies work on precomputed embeddings (MIMIC-CXR style) and the
benchmark study on frozen embeddings of a generated cohort; this module makes such
cohorts directly, with the mechanisms as independent knobs, so that audits and
mitigations (GCE resampling, group-aware training, thresholds) can be checked against
ground truth.

An embedding is isotropic Gaussian noise ``N(0, I_dim)`` plus, along fixed orthonormal
directions (drawn once per config from ``direction_seed``):

- the **class**: ``±separation / 2`` along ``w``, so the Mahalanobis distance between the
  two class means is ``separation`` (times the per-group multiplier ``separation_by``:
  below 1 = harder to classify for that group);
- the **attributes**: ``attribute_encoding`` along one direction per group value, so that
  race/sex/... are predictable from the embedding (as they are from real CXR embeddings);
- a **spurious** feature: ``strength * spurious_scale / 2 * (2 y - 1)`` along ``u`` in the
  groups of ``spurious_strength_by`` (``y`` = the recorded label), so a shortcut exists
  in those groups only.

Labels: prevalence per group combines in odds (``prevalence_by`` relative to
``prevalence``); label noise per group (independent events combine as
``1 - (1 - a)(1 - b)``) flips the recorded label symmetrically, or only ``to_1`` /
``to_0``. For ``no_finding`` (1 = "No Finding"), ``to_1`` is under-diagnosis: sick
patients recorded healthy, which a model learns as a higher false-positive rate of "No
Finding" in that group (the FPR gap of Seyyed-Kalantari et al.).

Per-group knobs are ``{attribute: {group value: number}}``; for ``age`` the values are the
bins ``0-20, 20-40, 40-60, 60-80, 80+``; ``fst`` values are "1".."6".

Presets: ``cxr`` (race White/Black/Asian/Hispanic/Other, sex, age, insurance
Medicare/Medicaid/Other; label ``no_finding``) and ``skin`` (fst, sex, age; label
``malignant``). Insurance is drawn from age and race: Medicare with probability 0.85 at
65+ (0.1 below), otherwise Medicaid with a race-dependent probability, else Other.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.data.cohort import Cohort
from fairmed.errors import SpecError

RACES = ["White", "Black", "Asian", "Hispanic", "Other"]
INSURANCES = ["Medicare", "Medicaid", "Other"]
AGE_BINS = ["0-20", "20-40", "40-60", "60-80", "80+"]
_MEDICAID_BY_RACE = {"White": 0.12, "Black": 0.35, "Asian": 0.2, "Hispanic": 0.4, "Other": 0.2}
GroupKnob = dict[str, dict[str, float]]

_PRESET_DEFAULTS: dict[str, dict[str, GroupKnob]] = {
    "cxr": {
        "prevalence_by": {},
        "separation_by": {"age": {"80+": 0.7}},
        "label_noise_by": {"insurance": {"Medicaid": 0.15}, "race": {"Black": 0.1}},
        "spurious_strength_by": {},
    },
    "skin": {
        "prevalence_by": {},
        "separation_by": {"fst": {"5": 0.6, "6": 0.45}},
        "label_noise_by": {},
        "spurious_strength_by": {"fst": {"1": 0.6, "2": 0.6}},
    },
}


class EmbeddingSynthConfig(BaseModel):
    """Settings of the embedding generator; defaults run in a fraction of a second."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["cxr", "skin"] = "cxr"
    n: int = Field(4000, ge=1)
    dim: int = Field(64, ge=2, description="embedding width (the GCE benchmark uses 1376)")
    images_per_patient: float = Field(1.0, ge=1.0)
    # representation
    race_weights: dict[str, float] = Field(
        default_factory=lambda: {"White": 0.62, "Black": 0.17, "Asian": 0.04, "Hispanic": 0.07, "Other": 0.1}
    )
    fst_weights: list[float] = Field([0.22, 0.30, 0.22, 0.14, 0.08, 0.04])
    female_fraction: float = Field(0.48, ge=0.0, le=1.0)
    age_mean: float = 62.0
    age_sd: float = 17.0
    # mechanisms (None = the preset's default, see module docstring)
    prevalence: float = Field(0.4, gt=0.0, lt=1.0, description="P(label = 1)")
    prevalence_by: GroupKnob | None = None
    separation: float = Field(2.5, ge=0.0, description="distance between class means (noise sd = 1)")
    separation_by: GroupKnob | None = None
    label_noise: float = Field(0.0, ge=0.0, le=1.0)
    label_noise_by: GroupKnob | None = None
    label_noise_mode: Literal["symmetric", "to_1", "to_0"] = "to_1"
    spurious_strength_by: GroupKnob | None = None
    spurious_scale: float = Field(
        3.0, ge=0.0, description="class gap along the spurious direction at strength 1"
    )
    attribute_encoding: float = Field(1.0, ge=0.0, description="group mean shift along group directions")
    direction_seed: int = Field(0, description="seed of the fixed directions (same across cohort seeds)")

    @model_validator(mode="after")
    def _fill_and_check(self) -> EmbeddingSynthConfig:
        for name, default in _PRESET_DEFAULTS[self.preset].items():
            if getattr(self, name) is None:
                setattr(self, name, {a: dict(v) for a, v in default.items()})
        unknown = set(self.race_weights) - set(RACES)
        if unknown or any(w < 0 for w in self.race_weights.values()) or sum(self.race_weights.values()) <= 0:
            raise SpecError(
                f"race_weights: expected non-negative weights for {RACES}, got {self.race_weights}"
            )
        if len(self.fst_weights) != 6 or any(w < 0 for w in self.fst_weights) or sum(self.fst_weights) <= 0:
            raise SpecError(f"fst_weights: expected 6 non-negative weights, got {self.fst_weights}")
        groups = self.group_values()
        for name in ("prevalence_by", "separation_by", "label_noise_by", "spurious_strength_by"):
            knob: GroupKnob = getattr(self, name)
            clean: GroupKnob = {}
            for attr, mapping in knob.items():
                if attr not in groups:
                    raise SpecError(
                        f"{name}: attribute {attr!r} not in this preset (expected one of {list(groups)})"
                    )
                clean[attr] = {str(k): float(v) for k, v in mapping.items()}
                bad = set(clean[attr]) - set(groups[attr])
                if bad:
                    raise SpecError(f"{name}.{attr}: unknown groups {sorted(bad)} (expected {groups[attr]})")
                lo, hi = (1e-6, 1 - 1e-6) if name == "prevalence_by" else (0.0, 1.0)
                if name == "separation_by":
                    hi = 100.0
                if any(not lo <= v <= hi for v in clean[attr].values()):
                    raise SpecError(f"{name}.{attr}: values must lie in [{lo:g}, {hi:g}], got {mapping}")
            setattr(self, name, clean)
        return self

    @property
    def attributes(self) -> list[str]:
        return ["race", "sex", "age", "insurance"] if self.preset == "cxr" else ["fst", "sex", "age"]

    @property
    def label(self) -> str:
        return "no_finding" if self.preset == "cxr" else "malignant"

    def class_names(self) -> list[str]:
        return ["finding", "no finding"] if self.preset == "cxr" else ["benign", "malignant"]

    def group_values(self) -> dict[str, list[str]]:
        """The group values each categorical attribute (and the age bins) can take."""
        out = {"sex": ["female", "male"], "age": AGE_BINS}
        if self.preset == "cxr":
            out.update(race=RACES, insurance=INSURANCES)
        else:
            out["fst"] = [str(k) for k in range(1, 7)]
        return out


def _knob(base: float, knob: GroupKnob, keys: dict[str, np.ndarray], combine: str) -> np.ndarray:
    """Per-sample value of a per-group knob: 'mul' multiplies, 'or' combines probabilities,
    'odds' multiplies the odds relative to ``base``."""
    n = len(next(iter(keys.values())))
    out = np.full(n, base, dtype=np.float64)
    for attr, mapping in knob.items():
        col = keys[attr]
        for value, v in mapping.items():
            hit = col == value
            if combine == "mul":
                out[hit] *= v
            elif combine == "or":
                out[hit] = 1.0 - (1.0 - out[hit]) * (1.0 - v)
            else:
                odds = out[hit] / (1 - out[hit]) * (v / (1 - v)) / (base / (1 - base))
                out[hit] = odds / (1 + odds)
    return out


def age_bins(age: np.ndarray) -> np.ndarray:
    """The age bins of Seyyed-Kalantari et al. (0-20, 20-40, 40-60, 60-80, 80+)."""
    return np.asarray(AGE_BINS, dtype=object)[np.clip(np.asarray(age) // 20, 0, 4).astype(int)]


def _directions(cfg: EmbeddingSynthConfig) -> dict[str, np.ndarray]:
    """Orthonormal directions (when dim allows) for class, spurious and every group value."""
    groups = cfg.group_values()
    names = ["class", "spurious"] + [f"{a}={v}" for a in cfg.attributes if a != "age" for v in groups[a]]
    rng = np.random.default_rng(cfg.direction_seed)
    raw = rng.standard_normal((cfg.dim, len(names)))
    if len(names) <= cfg.dim:
        basis = np.linalg.qr(raw)[0]
    else:
        basis = raw / np.linalg.norm(raw, axis=0, keepdims=True)
    return {name: basis[:, k].astype(np.float32) for k, name in enumerate(names)}


def generate_embeddings(config: EmbeddingSynthConfig | None = None, seed: int = 0) -> Cohort:
    """Draw a cohort with an ``embeddings`` float32 matrix (n, dim); deterministic given seed.

    Besides the attributes and the recorded label, the table holds the truth:
    ``<label>_clean`` (before label noise), ``separation`` and ``spurious`` (the
    per-sample strength of each mechanism).
    """
    cfg = config or EmbeddingSynthConfig()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    n = cfg.n
    n_patients = max(1, int(np.ceil(n / cfg.images_per_patient)))
    patient = np.sort(rng.integers(0, n_patients, size=n)) if n_patients < n else np.arange(n)
    sex = np.where(rng.random(n_patients) < cfg.female_fraction, "female", "male").astype(object)[patient]
    age = np.clip(np.round(rng.normal(cfg.age_mean, cfg.age_sd, n_patients)), 18, 95)[patient]
    columns: dict[str, np.ndarray] = {"sex": sex, "age": age.astype(float)}
    keys: dict[str, np.ndarray] = {"sex": sex, "age": age_bins(age)}
    if cfg.preset == "cxr":
        names = list(cfg.race_weights)
        w = np.array([cfg.race_weights[r] for r in names])
        race = np.asarray(names, dtype=object)[rng.choice(len(names), size=n_patients, p=w / w.sum())][
            patient
        ]
        medicare = rng.random(n) < np.where(age >= 65, 0.85, 0.1)
        medicaid_p = pd.Series(race).map(_MEDICAID_BY_RACE).to_numpy(dtype=float)
        medicaid = ~medicare & (rng.random(n) < medicaid_p)
        insurance = np.where(medicare, "Medicare", np.where(medicaid, "Medicaid", "Other")).astype(object)
        columns.update(race=race, insurance=insurance)
        keys.update(race=race, insurance=insurance)
    else:
        w = np.asarray(cfg.fst_weights, dtype=float)
        fst = rng.choice(np.arange(1, 7), size=n_patients, p=w / w.sum())[patient]
        columns["fst"] = fst.astype(np.int64)
        keys["fst"] = fst.astype(str).astype(object)

    p = _knob(cfg.prevalence, cfg.prevalence_by, keys, "odds")
    y_clean = (rng.random(n) < p).astype(np.int64)
    noise_p = _knob(cfg.label_noise, cfg.label_noise_by, keys, "or")
    flip = rng.random(n) < noise_p
    if cfg.label_noise_mode == "to_1":
        flip &= y_clean == 0
    elif cfg.label_noise_mode == "to_0":
        flip &= y_clean == 1
    y = np.where(flip, 1 - y_clean, y_clean)

    separation = _knob(cfg.separation, cfg.separation_by, keys, "mul")
    spurious = _knob(0.0, cfg.spurious_strength_by, keys, "or")
    dirs = _directions(cfg)
    x = rng.standard_normal((n, cfg.dim), dtype=np.float32)
    x += np.outer(((2 * y_clean - 1) * separation / 2).astype(np.float32), dirs["class"])
    x += np.outer(((2 * y - 1) * spurious * cfg.spurious_scale / 2).astype(np.float32), dirs["spurious"])
    for attr in cfg.attributes:
        if attr == "age":
            continue
        values = cfg.group_values()[attr]
        onehot = (keys[attr][:, None] == np.asarray(values, dtype=object)[None, :]).astype(np.float32)
        group_dirs = np.stack([dirs[f"{attr}={v}"] for v in values])
        x += cfg.attribute_encoding * (onehot @ group_dirs)

    width = len(str(max(n - 1, 1)))
    table = pd.DataFrame(
        {
            "id": [f"emb{i:0{width}d}" for i in range(n)],
            "patient_id": [f"p{i:0{width}d}" for i in patient],
            cfg.label: y,
            f"{cfg.label}_clean": y_clean,
            **{a: columns[a] for a in cfg.attributes},
            "separation": separation,
            "spurious": spurious,
        }
    )
    return Cohort(
        table=table,
        labels=[cfg.label],
        attributes=cfg.attributes,
        class_names={cfg.label: cfg.class_names()},
        embeddings=x,
        meta={"synth_embeddings": cfg.model_dump(mode="json"), "seed": seed, "source": "synth_embeddings"},
        name=f"synth_embeddings_{cfg.preset}",
    )
