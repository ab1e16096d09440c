"""The built-in data set: skin-lesion images with known, controllable bias.

Real dermatology images cannot ship with fairmed, so fairmed draws its own. Every
audit and mitigation can then be checked against ground truth: the cohort carries
the generator's settings (``meta["synth"]``) and per-image truth columns
(``<label>_clean`` before label noise, ``artifact``, ``contrast``, ``signal``).

How an image is made (all vectorized over a chunk of images, no loop over pixels):

- **Skin colour** per Fitzpatrick type from the individual typology angle
  ``ITA = atan((L* - 50) / b*)`` ranges of Del Bino & Bernerd (2013) (very light > 55°,
  light 41-55°, intermediate 28-41°, tan 10-28°, brown -30-10°, dark < -30°), mapped
  to FST 1-6, converted CIELAB (D65) -> sRGB; low-frequency texture, a lighting
  gradient, a mild vignette and pixel noise on top.
- **Lesion** whose size, border irregularity (radial harmonics), border sharpness,
  colour (darkening of L*, shift in a*/b*) and colour variegation (a second colour
  mixed in by a noise field) depend on the class. Each class is a prototype; an image's
  parameters are ``benign + signal * (prototype - benign) + noise``, so ``signal``
  (per group) sets how discriminative the morphology is.
- **Contrast**: the lesion colour is ``skin + contrast * (lesion - skin)`` in CIELAB;
  the darkening is relative to the skin's L*, so dark skin has a smaller absolute
  contrast even before the per-group ``contrast`` knob lowers it further.
- **Amplitudes**: by default (``amplitudes = "relative"``) shading multiplies the colour and
  the lesion darkens the skin's own L*, so a dark-skin image has less pixel variance (about
  half at FST 5-6 vs 1-2). ``amplitudes = "fixed"`` renders the lesion's colour offset and the
  shading of a reference FST 3 skin on every skin colour: skin types then differ in colour
  only (up to clipping at 0 / 255). ``SynthConfig.neutral()`` switches every group difference off.

Bias knobs (each independent; dicts are keyed by Fitzpatrick type 1-6 or by sex):

- representation: ``fst_weights``, ``female_fraction``, ``age_mean``/``age_sd``;
- class prevalence: ``prevalence`` (+ ``prevalence_by_fst``/``_by_sex``, combined in
  odds) and ``prevalence_age_slope``; multi-class: ``class_weights``(``_by_fst``);
- lesion contrast: ``contrast_by_fst`` / ``contrast_by_sex`` (multiplicative);
- difficulty of the morphology: ``signal_by_fst`` / ``signal_by_sex`` (multiplicative;
  the sex-linked difficulty of the ISIC study is ``signal_by_sex``);
- label noise: ``label_noise`` + ``label_noise_by_fst`` / ``_by_sex`` (flip probability);
- spurious artifact (``ruler`` or ``ink`` mark): present at ``artifact_rate`` independent
  of the label, and correlated with the recorded label in chosen groups with strength
  ``s``: ``P(artifact | y = artifact_class) = rate + s (1 - rate)``,
  ``P(artifact | other) = rate (1 - s)``.

The defaults tell the demo story: dark skin (FST 5-6) is rare and its lesions have
lower contrast, and a ruler comes with malignant lesions of light skin (FST 1-2).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairmed.data.cohort import Cohort
from fairmed.errors import SpecError

# Del Bino & Bernerd ITA categories (degrees), one per Fitzpatrick type (bounded at the ends).
ITA_RANGES: dict[int, tuple[float, float]] = {
    1: (55.0, 65.0),
    2: (41.0, 55.0),
    3: (28.0, 41.0),
    4: (10.0, 28.0),
    5: (-30.0, 10.0),
    6: (-60.0, -30.0),
}
CLASS_NAMES = ["nevus", "melanoma", "inflammatory", "keratosis", "vascular", "carcinoma"]
CHUNK = 64  # images rendered per vectorized step (fixed: part of the determinism contract)
# `amplitudes: fixed` renders every skin type with the amplitudes of this skin: the middle of FST 3's
# ITA range (34.5 degrees) at the middle of the drawn a*, b* ranges (11, 17.5).
REFERENCE_SKIN_LAB = np.array([50.0 + 17.5 * np.tan(np.radians(34.5)), 11.0, 17.5])

# Class prototypes. radius/irregularity in units of the half image; depth = relative L*
# darkening; da/db = a*/b* shift; *2 = the second (variegation) colour; edge = border width.
_PROTO_FIELDS = ("radius", "irregularity", "variegation", "depth", "da", "db", "depth2", "da2", "db2", "edge")
_PROTOTYPES = np.array(
    [
        # radius irr  var  depth  da    db   depth2 da2  db2   edge
        [0.26, 0.04, 0.15, 0.40, 4.0, 8.0, 0.50, 5.0, 6.0, 0.06],  # nevus / benign
        [0.40, 0.16, 0.85, 0.52, 3.0, 2.0, 0.30, -4.0, -16.0, 0.10],  # melanoma / malignant
        [0.46, 0.10, 0.35, 0.10, 20.0, 3.0, 0.18, 26.0, 0.0, 0.28],  # inflammatory (red, diffuse)
        [0.32, 0.08, 0.45, 0.28, 6.0, 16.0, 0.40, 4.0, 12.0, 0.04],  # keratosis (tan, sharp)
        [0.20, 0.03, 0.25, 0.25, 26.0, -6.0, 0.35, 20.0, -12.0, 0.05],  # vascular (red-purple, small)
        [0.30, 0.14, 0.40, -0.06, 10.0, -2.0, 0.20, 14.0, 0.0, 0.08],  # carcinoma (pearly pink)
    ],
    dtype=np.float32,
)
# within-class spread of every prototype field (the classes overlap)
_SPREAD = np.array([0.06, 0.035, 0.15, 0.07, 3.0, 3.0, 0.08, 3.0, 4.0, 0.02], dtype=np.float32)


def _prototypes(n_classes: int) -> np.ndarray:
    """The first six are hand-made; more classes are fixed random mixtures of them."""
    if n_classes <= len(_PROTOTYPES):
        return _PROTOTYPES[:n_classes]
    rng = np.random.default_rng(20240607)
    mix = rng.dirichlet(np.ones(len(_PROTOTYPES)), size=n_classes - len(_PROTOTYPES)).astype(np.float32)
    return np.concatenate([_PROTOTYPES, mix @ _PROTOTYPES])


class SynthConfig(BaseModel):
    """Settings of the generator; every field has a default that runs on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(2000, ge=1, description="number of images")
    size: int = Field(64, ge=8, le=512, description="image height = width in pixels")
    n_classes: int = Field(2, ge=2, le=20, description="2: label 'malignant'; >2: label 'condition'")
    images_per_patient: float = Field(1.0, ge=1.0, description="mean images per patient_id")
    # representation
    fst_weights: list[float] = Field(
        [0.22, 0.30, 0.22, 0.14, 0.08, 0.04], description="share of Fitzpatrick types 1..6"
    )
    female_fraction: float = Field(0.5, ge=0.0, le=1.0)
    age_mean: float = 55.0
    age_sd: float = 16.0
    # prevalence
    prevalence: float = Field(0.35, gt=0.0, lt=1.0, description="P(malignant) (binary)")
    prevalence_by_fst: dict[int, float] = Field(default_factory=dict)
    prevalence_by_sex: dict[str, float] = Field(default_factory=dict)
    prevalence_age_slope: float = Field(0.0, description="log-odds of malignancy per 10 years above 50")
    class_weights: list[float] | None = Field(None, description="multi-class prevalence (default uniform)")
    class_weights_by_fst: dict[int, list[float]] = Field(default_factory=dict)
    # image difficulty
    contrast: float = Field(1.0, ge=0.0, description="lesion contrast for everyone")
    contrast_by_fst: dict[int, float] = Field(default_factory=lambda: {5: 0.6, 6: 0.45})
    contrast_by_sex: dict[str, float] = Field(default_factory=dict)
    signal: float = Field(1.0, ge=0.0, description="how far class morphology departs from benign")
    signal_by_fst: dict[int, float] = Field(default_factory=dict)
    signal_by_sex: dict[str, float] = Field(default_factory=dict)
    # label noise
    label_noise: float = Field(0.0, ge=0.0, le=1.0, description="probability a recorded label is wrong")
    label_noise_by_fst: dict[int, float] = Field(default_factory=dict)
    label_noise_by_sex: dict[str, float] = Field(default_factory=dict)
    # spurious artifact
    artifact: Literal["ruler", "ink", "none"] = "ruler"
    artifact_rate: float = Field(0.08, ge=0.0, le=1.0, description="artifact rate unrelated to the label")
    artifact_class: int = Field(1, ge=0, description="the class the artifact is correlated with")
    artifact_strength_by_fst: dict[int, float] = Field(default_factory=lambda: {1: 0.6, 2: 0.6})
    artifact_strength_by_sex: dict[str, float] = Field(default_factory=dict)
    # rendering
    noise: float = Field(4.0, ge=0.0, description="pixel noise (sd, 0-255 scale)")
    texture: float = Field(0.06, ge=0.0, description="low-frequency skin texture (relative)")
    lighting: float = Field(0.12, ge=0.0, description="lighting gradient strength (relative)")
    amplitudes: Literal["relative", "fixed"] = Field(
        "relative",
        description="relative: texture, lighting, vignette, brightness and lesion darkening scale with the "
        "skin's own brightness (as on real skin: darker images carry less pixel variance); fixed: every "
        "skin type gets the absolute amplitudes of a reference FST 3 skin (types differ in colour only)",
    )

    @field_validator("fst_weights")
    @classmethod
    def _six_weights(cls, v: list[float]) -> list[float]:
        if len(v) != 6 or any(w < 0 for w in v) or sum(v) <= 0:
            raise SpecError(f"fst_weights: expected 6 non-negative weights with a positive sum, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        for name in ("prevalence", "contrast", "signal", "label_noise", "artifact_strength"):
            for suffix, keys in (("_by_fst", {1, 2, 3, 4, 5, 6}), ("_by_sex", {"female", "male"})):
                field = getattr(self, name + suffix, None)
                if field is None:
                    continue
                bad = set(field) - keys
                if bad:
                    raise SpecError(f"{name}{suffix}: unknown keys {sorted(bad)} (expected {sorted(keys)})")
                lo, hi = (0.0, 1.0) if name != "contrast" and name != "signal" else (0.0, 10.0)
                if name == "prevalence":
                    lo, hi = 1e-6, 1 - 1e-6
                if any(not lo <= v <= hi for v in field.values()):
                    raise SpecError(f"{name}{suffix}: values must lie in [{lo:g}, {hi:g}], got {field}")
        if self.class_weights is not None and len(self.class_weights) != self.n_classes:
            raise SpecError(
                f"class_weights: expected {self.n_classes} weights, got {len(self.class_weights)}"
            )
        for k, w in self.class_weights_by_fst.items():
            if len(w) != self.n_classes:
                raise SpecError(f"class_weights_by_fst[{k}]: expected {self.n_classes} weights")
        if self.artifact_class >= self.n_classes:
            raise SpecError(f"artifact_class {self.artifact_class} >= n_classes {self.n_classes}")
        return self

    @classmethod
    def neutral(cls, **overrides) -> SynthConfig:
        """No injected difference between groups beyond skin colour (and ``overrides``).

        No lesion-contrast gap, no artifact (a ruler's fixed grey contrasts more with dark skin), and
        ``amplitudes = "fixed"``: every image is its skin colour plus texture, lighting and a lesion
        drawn from the same distribution for every skin type, so no group is easier to reconstruct
        or classify by construction. Representation (``fst_weights``) is left to the caller.
        """
        settings = {"contrast_by_fst": {}, "artifact": "none", "artifact_strength_by_fst": {}}
        return cls(**{**settings, "amplitudes": "fixed", **overrides})

    @property
    def label(self) -> str:
        return "malignant" if self.n_classes == 2 else "condition"

    def class_names(self) -> list[str]:
        if self.n_classes == 2:
            return ["benign", "malignant"]
        names = CLASS_NAMES[: self.n_classes]
        return names + [f"class_{k}" for k in range(len(names), self.n_classes)]


# ------------------------------------------------------------------------ colour
_XYZ_TO_RGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]], dtype=np.float64
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB in [0, 1], vectorized over leading axes (last axis = L, a, b)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    delta = 6.0 / 29.0
    xyz = np.where(f > delta, f**3, 3 * delta**2 * (f - 4.0 / 29.0)) * _WHITE_D65
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(srgb, 0.0, 1.0)


def ita_degrees(lab: np.ndarray) -> np.ndarray:
    """Individual typology angle of CIELAB colours: atan((L - 50) / b) in degrees."""
    lab = np.asarray(lab, dtype=np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


# ------------------------------------------------------------------ per-sample draws
def _by_group(base: np.ndarray, table: dict, keys: np.ndarray, combine: str) -> np.ndarray:
    """Apply a per-group knob: multiply, or combine probabilities as independent events."""
    out = base.astype(np.float64).copy()
    for key, value in table.items():
        hit = keys == key
        if combine == "mul":
            out[hit] *= value
        else:  # "or": 1 - (1 - a)(1 - b)
            out[hit] = 1.0 - (1.0 - out[hit]) * (1.0 - value)
    return out


def _odds(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p / (1.0 - p)


def _draw_table(cfg: SynthConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Patients, attributes, labels, artifact flags and per-image difficulty (no pixels)."""
    n = cfg.n
    n_patients = max(1, int(np.ceil(n / cfg.images_per_patient)))
    patient = np.sort(rng.integers(0, n_patients, size=n)) if n_patients < n else np.arange(n)
    w = np.asarray(cfg.fst_weights, dtype=np.float64)
    fst_p = rng.choice(np.arange(1, 7), size=n_patients, p=w / w.sum())
    sex_p = np.where(rng.random(n_patients) < cfg.female_fraction, "female", "male").astype(object)
    age_p = np.clip(np.round(rng.normal(cfg.age_mean, cfg.age_sd, n_patients)), 18, 90)
    fst, sex, age = fst_p[patient], sex_p[patient], age_p[patient]

    if cfg.n_classes == 2:
        base = np.full(n, cfg.prevalence)
        odds = _odds(base)
        for key, value in cfg.prevalence_by_fst.items():
            odds = np.where(fst == key, odds * _odds(value) / _odds(cfg.prevalence), odds)
        for key, value in cfg.prevalence_by_sex.items():
            odds = np.where(sex == key, odds * _odds(value) / _odds(cfg.prevalence), odds)
        odds = odds * np.exp(cfg.prevalence_age_slope * (age - 50.0) / 10.0)
        y_clean = (rng.random(n) < odds / (1.0 + odds)).astype(np.int64)
    else:
        weights = np.tile(np.asarray(cfg.class_weights or np.ones(cfg.n_classes), dtype=np.float64), (n, 1))
        for key, value in cfg.class_weights_by_fst.items():
            weights[fst == key] = value
        cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        y_clean = (rng.random((n, 1)) > cdf).sum(axis=1).clip(0, cfg.n_classes - 1).astype(np.int64)

    flip_p = _by_group(np.full(n, cfg.label_noise), cfg.label_noise_by_fst, fst, "or")
    flip_p = _by_group(flip_p, cfg.label_noise_by_sex, sex, "or")
    flip = rng.random(n) < flip_p
    other = (y_clean + rng.integers(1, cfg.n_classes, size=n)) % cfg.n_classes  # a different class
    y = np.where(flip, other, y_clean)

    strength = _by_group(np.zeros(n), cfg.artifact_strength_by_fst, fst, "or")
    strength = _by_group(strength, cfg.artifact_strength_by_sex, sex, "or")
    rate = cfg.artifact_rate
    p_art = np.where(y == cfg.artifact_class, rate + strength * (1 - rate), rate * (1 - strength))
    artifact = (rng.random(n) < p_art) & (cfg.artifact != "none")

    contrast = _by_group(np.full(n, cfg.contrast), cfg.contrast_by_fst, fst, "mul")
    contrast = _by_group(contrast, cfg.contrast_by_sex, sex, "mul")
    signal = _by_group(np.full(n, cfg.signal), cfg.signal_by_fst, fst, "mul")
    signal = _by_group(signal, cfg.signal_by_sex, sex, "mul")

    width = len(str(max(n - 1, 1)))
    table = pd.DataFrame(
        {
            "id": [f"synth{i:0{width}d}" for i in range(n)],
            "patient_id": [f"p{i:0{width}d}" for i in patient],
            cfg.label: y,
            f"{cfg.label}_clean": y_clean,
            "fst": fst.astype(np.int64),
            "sex": sex,
            "age": age.astype(float),
            "artifact": artifact.astype(np.int64),
            "contrast": contrast,
            "signal": signal,
        }
    )
    return table, {
        "y_clean": y_clean,
        "contrast": contrast,
        "signal": signal,
        "artifact": artifact,
        "fst": fst,
    }


def _draw_looks(cfg: SynthConfig, drawn: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    """Per-image colours and lesion geometry (N x few numbers): cheap, done once for all images."""
    n = cfg.n
    fst = drawn["fst"]
    lo = np.array([ITA_RANGES[k][0] for k in range(1, 7)])[fst - 1]
    hi = np.array([ITA_RANGES[k][1] for k in range(1, 7)])[fst - 1]
    ita = rng.uniform(lo, hi)
    b = rng.uniform(13.0, 22.0, n)
    skin_lab = np.stack(
        [np.clip(50.0 + b * np.tan(np.radians(ita)), 15, 92), rng.uniform(7.0, 15.0, n), b], 1
    )

    protos = _prototypes(cfg.n_classes)
    params = protos[0] + drawn["signal"][:, None] * (protos[drawn["y_clean"]] - protos[0])
    params = params + rng.standard_normal((n, len(_PROTO_FIELDS))) * _SPREAD
    p = dict(zip(_PROTO_FIELDS, params.T))
    c = drawn["contrast"]

    def lesion_lab(base, depth, da, db):
        target = np.stack([base[:, 0] * (1 - depth), base[:, 1] + da, base[:, 2] + db], 1)
        lab = base + c[:, None] * (target - base)
        lab[:, 0] = np.clip(lab[:, 0], 5, 95)
        return lab

    def lesion_rgb(depth, da, db):
        if cfg.amplitudes == "relative":  # the lesion darkens the skin's own L*
            return lab_to_srgb(lesion_lab(skin_lab, depth, da, db))
        # fixed: the lesion's colour offset on the reference skin, added to this skin's colour
        ref = np.broadcast_to(REFERENCE_SKIN_LAB, skin_lab.shape)
        return lab_to_srgb(skin_lab) + lab_to_srgb(lesion_lab(ref, depth, da, db)) - lab_to_srgb(ref)

    return {
        "skin": lab_to_srgb(skin_lab).astype(np.float32) * 255,
        "lesion1": lesion_rgb(p["depth"], p["da"], p["db"]).astype(np.float32) * 255,
        "lesion2": lesion_rgb(p["depth2"], p["da2"], p["db2"]).astype(np.float32) * 255,
        "radius": np.clip(p["radius"], 0.08, 0.75).astype(np.float32),
        "irregularity": np.clip(p["irregularity"], 0.0, 0.45).astype(np.float32),
        "variegation": np.clip(p["variegation"], 0.0, 1.0).astype(np.float32),
        "edge": np.clip(p["edge"], 0.02, 0.4).astype(np.float32),
        "centre": rng.uniform(-0.18, 0.18, (n, 2)).astype(np.float32),
        "harmonics": rng.standard_normal((n, 6)).astype(np.float32),
        "phases": rng.uniform(0, 2 * np.pi, (n, 6)).astype(np.float32),
        "elongation": rng.uniform(0.0, 0.15, n).astype(np.float32),
        "light": rng.standard_normal((n, 2)).astype(np.float32),
        "brightness": rng.uniform(0.92, 1.06, n).astype(np.float32),
        "orientation": rng.integers(0, 4, n),
    }


# -------------------------------------------------------------------- rendering
def _interp_matrix(size: int, knots: int) -> np.ndarray:
    """Linear interpolation from ``knots`` control points to ``size`` pixels (size x knots)."""
    pos = np.linspace(0, knots - 1, size)
    left = np.clip(np.floor(pos).astype(int), 0, knots - 2)
    frac = pos - left
    out = np.zeros((size, knots), dtype=np.float32)
    out[np.arange(size), left] = 1 - frac
    out[np.arange(size), left + 1] = frac
    return out


def _smooth_noise(rng: np.random.Generator, count: int, size: int, knots: int) -> np.ndarray:
    interp = _interp_matrix(size, knots)
    grid = rng.standard_normal((count, knots, knots), dtype=np.float32)
    return interp @ grid @ interp.T


@lru_cache(maxsize=8)
def _ruler_templates(s: int) -> tuple[np.ndarray, np.ndarray]:
    """A ruler along each of the four image edges: strip masks and grey tones (4, s, s)."""
    ii = np.arange(s, dtype=np.float32)
    row, col = np.broadcast_arrays(ii[:, None], ii[None, :])
    band = max(3.0, 0.14 * s)
    period = max(3, s // 14)
    strips, tones = [], []
    for across, along in ((row, col), (s - 1 - row, col), (col, row), (s - 1 - col, row)):
        strip = across < band
        tick_len = np.where(np.mod(along, 5 * period) < period, band * 0.9, band * 0.55)
        ticks = strip & (np.mod(along, period) < max(1.0, s / 64)) & (across < tick_len)
        strips.append(strip)
        tones.append(np.where(ticks, 35.0, 228.0).astype(np.float32))
    return np.stack(strips), np.stack(tones)


def _render_chunk(cfg: SynthConfig, looks: dict, sl: slice, artifact: np.ndarray, rng) -> np.ndarray:
    s = cfg.size
    m = sl.stop - sl.start
    g = lambda key: looks[key][sl]  # noqa: E731
    axis = np.linspace(-1.0, 1.0, s, dtype=np.float32)
    yy, xx = axis[:, None], axis[None, :]

    # skin: colour x (texture, lighting gradient, vignette, brightness)
    light = g("light") * cfg.lighting
    shade = 1.0 + cfg.texture * _smooth_noise(rng, m, s, 6)
    shade += light[:, 0, None, None] * xx + light[:, 1, None, None] * yy
    shade -= 0.08 * (xx**2 + yy**2)
    shade *= g("brightness")[:, None, None]

    # lesion mask: radius modulated by harmonics 2..6 (irregular border), soft edge
    dx = xx - g("centre")[:, 0, None, None]
    dy = yy - g("centre")[:, 1, None, None]
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    wobble = g("elongation")[:, None, None] * np.cos(2 * theta)
    harm, phase, irr = g("harmonics"), g("phases"), g("irregularity")
    buf = np.empty_like(theta)
    for k in range(harm.shape[1]):  # amplitudes fall as 2/k: blobby, not star-shaped
        amp = irr * harm[:, k] * (2.0 / (k + 2))
        np.multiply(theta, np.float32(k + 2), out=buf)
        buf += phase[:, k, None, None]
        np.cos(buf, out=buf)
        buf *= amp[:, None, None]
        wobble += buf
    wobble += (0.35 * irr)[:, None, None] * _smooth_noise(rng, m, s, 9)  # ragged border
    r_edge = g("radius")[:, None, None] * (1.0 + wobble)
    edge = g("edge")[:, None, None]
    mask = np.clip((r_edge - rho) / edge + 0.5, 0.0, 1.0)

    # lesion colour: two colours mixed by a noise field (variegation) + darker core
    var = g("variegation")[:, None, None]
    mix = np.clip(0.5 + 0.9 * _smooth_noise(rng, m, s, 5), 0.0, 1.0)
    mix += np.clip(1.0 - rho / np.maximum(r_edge, 1e-3), 0.0, 1.0) * 0.25
    mix = np.clip(mix, 0.0, 1.0) * var

    # spurious artifact: a pixel mask and its colour (per channel below)
    paint, paint_rgb = None, None
    if cfg.artifact != "none" and artifact[sl].any():
        art = artifact[sl][:, None, None]
        if cfg.artifact == "ruler":
            strips, tones = _ruler_templates(s)
            orient = g("orientation")
            paint = strips[orient] & art
            tone = tones[orient] * g("brightness")[:, None, None]
            paint_rgb = (tone, tone, tone * np.float32(0.96))
        else:  # violet ink ring around the lesion, open on one side
            r_ink = g("radius")[:, None, None] * 1.35 + 0.08
            start = g("orientation")[:, None, None] * (np.pi / 2)
            paint = art & (np.abs(rho - r_ink) < 0.045) & (np.cos(theta - start) < 0.6)
            paint_rgb = (np.float32(110.0), np.float32(55.0), np.float32(150.0))

    grain = None
    if cfg.noise > 0:  # luminance grain, uniform with the configured sd
        grain = rng.random((m, s, s), dtype=np.float32) - np.float32(0.5)
        grain *= np.float32(cfg.noise * np.sqrt(12.0))
    out = np.empty((m, s, s, 3), dtype=np.uint8)
    skin, l1, l2 = g("skin"), g("lesion1"), g("lesion2")
    reference_rgb = (lab_to_srgb(REFERENCE_SKIN_LAB) * 255).astype(np.float32)
    for c in range(3):  # channel planes keep numpy's inner loops long
        col = l1[:, c, None, None] + (l2 - l1)[:, c, None, None] * mix
        col -= skin[:, c, None, None]
        col *= mask
        col += skin[:, c, None, None]
        if cfg.amplitudes == "relative":
            col *= shade
        else:  # the same absolute shading on every skin: that of the reference skin
            col += (shade - 1.0) * reference_rgb[c]
        if paint is not None:
            col = np.where(paint, paint_rgb[c], col)
        if grain is not None:
            col += grain
        np.clip(col, 0, 255, out=col)
        out[..., c] = col
    return out


def generate(config: SynthConfig | None = None, seed: int = 0) -> Cohort:
    """Draw a cohort of skin-lesion images with the bias mechanisms set in ``config``.

    Deterministic given ``(config, seed)``. Images are uint8 ``(n, size, size, 3)`` in
    memory; ``meta["synth"]`` holds the settings and ``meta["seed"]`` the seed.
    """
    cfg = config or SynthConfig()
    root = np.random.SeedSequence(seed)
    table_seq, look_seq, *chunk_seqs = root.spawn(2 + (cfg.n + CHUNK - 1) // CHUNK)
    table, drawn = _draw_table(cfg, np.random.default_rng(table_seq))
    looks = _draw_looks(cfg, drawn, np.random.default_rng(look_seq))
    images = np.empty((cfg.n, cfg.size, cfg.size, 3), dtype=np.uint8)
    for k, seq in enumerate(chunk_seqs):
        sl = slice(k * CHUNK, min(cfg.n, (k + 1) * CHUNK))
        images[sl] = _render_chunk(cfg, looks, sl, drawn["artifact"], np.random.default_rng(seq))
    return Cohort(
        table=table,
        labels=[cfg.label],
        attributes=["fst", "sex", "age"],
        class_names={cfg.label: cfg.class_names()},
        images=images,
        meta={"synth": cfg.model_dump(mode="json"), "seed": seed, "source": "synth"},
        name="synth",
    )


def mosaic(
    cohort: Cohort, per_cell: int = 4, label: str | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """A grid of images: one row per Fitzpatrick type, ``per_cell`` columns per class.

    Returns the uint8 mosaic and the row and column-block names (for a labelled figure).
    Cells with fewer images than ``per_cell`` are left black.
    """
    if cohort.images is None:
        raise SpecError("mosaic: the cohort has no in-memory images")
    label = label or cohort.label
    names = cohort.class_names.get(label) or [str(k) for k in range(cohort.n_classes(label))]
    s = cohort.images.shape[1]
    fst = cohort.table["fst"].to_numpy(dtype=float, na_value=np.nan)
    y = cohort.y(label)
    grid = np.zeros((6 * s, len(names) * per_cell * s, 3), dtype=np.uint8)
    for r, k in enumerate(range(1, 7)):
        for c in range(len(names)):
            idx = np.flatnonzero((fst == k) & (y == c))[:per_cell]
            for j, i in enumerate(idx):
                x0 = (c * per_cell + j) * s
                grid[r * s : (r + 1) * s, x0 : x0 + s] = cohort.images[i]
    return grid, [f"FST {k}" for k in range(1, 7)], list(names)
