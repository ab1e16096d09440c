"""Study kind ``vae_fairness``: are generative models fair? (López-Pérez, Hauberg & Feragen 2025).

For each repeat of the protocol (:mod:`fairmed.studies.vae_protocol`): two disjoint test sets (light,
dark), and one training set per dark fraction (A = 0 %, B = 50 %, C = 100 % by default). One residual
VAE with the perceptual loss (:mod:`fairmed.models.vae`) is trained on each training set and scored on
both test sets; each test image gives one Predictions row with ``recon_mse``, ``latent_std`` and
``elbo``. ``analyse`` turns these into the tables the report draws (Figs. 3 and 6: per training set and
test group; Figs. 7-8: disease distribution). The test groups are compared at the repeat level (the
unit of replication: a repeat's images share one VAE): per-repeat means, Wilcoxon signed-rank over
repeats; the pooled-image Mann-Whitney U is kept as a labelled descriptive addition.

Training goes through THE training loop (:func:`fairmed.train.loop.fit`) unchanged: the VAE is
wrapped as a model whose ``features`` undo the loop's ImageNet input normalisation (back to [0, 1])
and whose ``head`` returns the packed tensor ``[x | x_hat | mu | logvar]`` per row, and the VAE
objective is a :class:`~fairmed.train.strategies.Task` whose ``per_sample`` loss is
-ELBO + weight x perceptual; the plain ERM strategy averages it. Each VAE fits all ``n_train`` rows of
its training set. The ``paper`` profile keeps the last of its 15 epochs, as the paper does
(``select: last``); ``select: loss`` keeps the epoch with the lowest loss on ``val_rows`` separate
rows of the same skin-tone mix that are neither fitted nor tested
(:func:`~fairmed.studies.vae_protocol.draw_protocol`), the smoke and cpu profiles' rule.

Each loss term's size is logged per epoch (batch means over the epoch's training rows: the
reconstruction term ||x - x_hat||^2 / (2 obs_var), the KL, the weighted perceptual term), kept in
``TrainedVAE.terms`` and, for the final epoch, in every Predictions row (``loss_recon``,
``loss_kl``, ``loss_perceptual``). A perceptual term below 1e-3 of the reconstruction term does
nothing to the fit: that logs a warning. The ``paper`` profile refuses to run the perceptual loss
without a local ImageNet VGG-19 file (``require_imagenet_phi``); smoke and cpu fall back to random
VGG-19 weights, with a warning, and every row records which Phi ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor, nn

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import DataError, SpecError
from fairmed.metrics.stats import mann_whitney, stars
from fairmed.models.perceptual import VGG19_FILE, FeatureNet, PhiInfo, load_phi, perceptual_loss
from fairmed.models.vae import VAE, VAEConfig, evaluate, gaussian_nll, kl_divergence, reparameterize
from fairmed.studies.classification import load_cohort
from fairmed.studies.kinds import StudyKind, grid_runs
from fairmed.studies.spec import deep_merge, validation_error
from fairmed.studies.vae_protocol import VAEProtocol, draw_protocol, fraction_names

log = logging.getLogger(__name__)

KIND = "vae_fairness"
INERT_SHARE = 1e-3  # a weighted perceptual term below this share of the reconstruction term does nothing
EXAMPLES = "examples"  # the extra split holding example reconstructions
VALUES = ("recon_mse", "latent_std", "elbo")
Profile = Literal["smoke", "cpu", "paper"]
# Fitzpatrick17k's label granularities (three, nine, fine), coarse to fine
GRANULARITIES = ("three_partition_label", "nine_partition_label", "label")


class VAEStudy(BaseModel):
    """Settings of the study: the protocol, the VAE, and the loop's settings (epochs, batch, lr)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: str = Field("fst:12-56", description="GroupSpec giving the light and dark groups")
    protocol: VAEProtocol = VAEProtocol()
    vae: VAEConfig = VAEConfig()
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-4, gt=0)
    select: Literal["last", "loss"] = Field(
        "loss", description="keep the last epoch (the paper) or the lowest loss on the selection rows"
    )
    require_imagenet_phi: bool = Field(
        False, description="refuse the random-weight Phi fallback (the paper profile: ImageNet VGG-19 only)"
    )
    val_rows: int = Field(
        128,
        ge=1,
        description="model-selection rows per training set (same dark share, not fitted, not tested)",
    )
    device: str = "auto"
    num_threads: int | None = Field(None, ge=1)
    seed: int = 0
    examples: int = Field(6, ge=0, description="test images per group kept as reconstruction examples")

    @classmethod
    def profile(cls, name: Profile, **overrides) -> VAEStudy:
        """Preset sizes: ``smoke`` (seconds), ``cpu`` (minutes on 2 cores), ``paper`` (the paper's settings)."""
        presets: dict[str, dict] = {
            "smoke": dict(
                protocol=VAEProtocol(n_test=24, n_train=64, repeats=1),
                vae=VAEConfig(image_size=16, channels=[8, 16], latent_channels=4, perceptual_layers=2),
                epochs=2,
                batch_size=32,
                lr=2e-3,
                val_rows=16,
                examples=3,
            ),
            "cpu": dict(
                protocol=VAEProtocol(n_test=150, n_train=400, repeats=3),
                vae=VAEConfig(image_size=32, channels=[32, 64], latent_channels=16, perceptual_layers=2),
                epochs=6,
                batch_size=64,
                lr=1e-3,
                val_rows=64,
            ),
            "paper": dict(
                protocol=VAEProtocol(),
                vae=VAEConfig(
                    image_size=128, channels=[32, 64, 128, 256], latent_channels=64, blocks=2, obs_var=1.0
                ),
                epochs=15,
                batch_size=64,
                lr=1e-4,
                select="last",
                require_imagenet_phi=True,
            ),
        }
        return cls.model_validate({**presets[name], **overrides})

    def method(self) -> str:
        return "vae+perceptual" if self.vae.perceptual_weight > 0 else "vae"

    def for_method(self, method: str) -> VAEStudy:
        """These settings for one method: ``vae`` switches the perceptual term off, ``vae+perceptual``
        keeps the configured weight (which must then be positive)."""
        if method == "vae":
            return self.model_copy(update={"vae": self.vae.model_copy(update={"perceptual_weight": 0.0})})
        if method != "vae+perceptual":
            raise SpecError(f"vae_fairness: methods take 'vae' and 'vae+perceptual', got {method!r}")
        if self.vae.perceptual_weight <= 0:
            raise SpecError("vae_fairness: method 'vae+perceptual' needs vae.perceptual_weight > 0, got 0")
        return self


def check_phi(study: VAEStudy) -> None:
    """The paper profile's rule: the perceptual loss runs on ImageNet VGG-19 weights from a local file,
    never on the random fallback (a one-line SpecError naming the expected file)."""
    if not study.require_imagenet_phi or study.vae.perceptual_weight <= 0:
        return
    weights = study.vae.perceptual_weights
    if weights is None:
        raise SpecError(
            f"vae_fairness paper profile: the perceptual loss needs ImageNet VGG-19 weights; set"
            f" vae.perceptual_weights to a local torchvision vgg19 state_dict ({VGG19_FILE})"
        )
    if not Path(weights).is_file():
        raise SpecError(
            f"vae_fairness paper profile: vae.perceptual_weights {weights} is not a file (expected a local"
            f" torchvision vgg19 state_dict, {VGG19_FILE})"
        )


def images_per_group(study: VAEStudy) -> int:
    """Images each group needs so that every draw is possible: its test set, then room for a fitted draw
    (at most ``n_train`` distinct rows) and the selection rows outside it."""
    return study.protocol.n_test + study.protocol.n_train + study.val_rows


# ------------------------------------------------------------------ the loop's view of a VAE
@dataclass(frozen=True)
class VAEObjective:
    """Layout of the packed head output and the per-sample objective (shared by the Task below)."""

    image_numel: int
    latent_numel: int
    obs_var: float
    beta: float
    perceptual_weight: float
    phi: FeatureNet | None = field(default=None, compare=False)
    image_shape: tuple[int, int, int] = (3, 32, 32)
    chunk: int = 256
    terms: TermLog = field(default_factory=lambda: TermLog(), compare=False)

    def unpack(self, packed: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        d, k = self.image_numel, self.latent_numel
        p = packed.float()
        shape = (-1, *self.image_shape)
        return (
            p[:, :d].reshape(shape),
            p[:, d : 2 * d].reshape(shape),
            p[:, 2 * d : 2 * d + k],
            p[:, 2 * d + k :],
        )

    def per_sample(self, packed: Tensor) -> Tensor:
        """-ELBO (beta-weighted KL) + weight * perceptual per row; the perceptual term in chunks of rows."""
        home = packed.device  # the loop scores validation rows on the CPU; Phi may live on the GPU
        if self.phi is not None and self.perceptual_weight > 0:
            packed = packed.to(self.phi.mean.device)
        x, x_hat, mu, logvar = self.unpack(packed)
        nll = gaussian_nll(x, x_hat, self.obs_var)
        kl = self.beta * kl_divergence(mu, logvar)
        loss = nll + kl
        lp = None
        if self.phi is not None and self.perceptual_weight > 0:
            lp = self.perceptual_weight * torch.cat(
                [
                    perceptual_loss(self.phi, x[i : i + self.chunk], x_hat[i : i + self.chunk])
                    for i in range(0, len(x), self.chunk)
                ]
            )
            loss = loss + lp
        if packed.requires_grad:  # a training step (validation and scoring pass detached outputs)
            recon = (x - x_hat).pow(2).flatten(1).sum(1) / (2.0 * self.obs_var)
            self.terms.add(recon, kl, lp)
        else:
            self.terms.close_epoch()
        return loss.to(home)


class TermLog:
    """Per-epoch means of the objective's terms over the training rows (closed at the first call on
    detached outputs: the loop scores the validation rows after every epoch)."""

    NAMES = ("loss_recon", "loss_kl", "loss_perceptual")

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._sums = torch.zeros(3, dtype=torch.float64)
        self._n = 0

    def add(self, recon: Tensor, kl: Tensor, lp: Tensor | None) -> None:
        parts = [
            recon.detach().sum(),
            kl.detach().sum(),
            lp.detach().sum() if lp is not None else recon.new_zeros(()),
        ]
        self._sums += torch.stack([p.double().cpu() for p in parts])
        self._n += len(recon)

    def close_epoch(self) -> None:
        if not self._n:
            return
        means = (self._sums / self._n).tolist()
        row = {"epoch": len(self.rows) + 1, **dict(zip(self.NAMES, means))}
        row["perceptual_share"] = (
            row["loss_perceptual"] / row["loss_recon"] if row["loss_recon"] else float("nan")
        )
        log.info(
            "vae epoch %d loss terms: %s", row["epoch"], ", ".join(f"{k}={v:.4g}" for k, v in row.items())
        )
        self.rows.append(row)
        self._sums.zero_()
        self._n = 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["epoch", *self.NAMES, "perceptual_share"])


def _vae_task(objective: VAEObjective):
    """A :class:`Task` whose per-sample loss is the VAE objective (built lazily: torch training layer)."""
    from fairmed.train.strategies import Task

    @dataclass(frozen=True)
    class VAETask(Task):
        objective: VAEObjective | None = None

        @property
        def n_out(self) -> int:
            return 2 * self.objective.image_numel + 2 * self.objective.latent_numel

        def per_sample(self, logits: Tensor, y: Tensor) -> Tensor:
            return self.objective.per_sample(logits)

        def scores(self, logits: Tensor) -> Tensor:  # no classification score: AUC is undefined (NaN)
            return torch.zeros(len(logits))

    return VAETask(n_classes=2, loss="vae", objective=objective)


class VAETrainable(nn.Module):
    """The VAE as the loop sees a classifier: ``features`` -> [0, 1] images, ``head`` -> packed output."""

    def __init__(self, vae: VAE):
        super().__init__()
        from fairmed.models.perceptual import IMAGENET_MEAN, IMAGENET_STD

        self.vae = vae
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def features(self, x: Tensor) -> Tensor:
        return (x * self.std + self.mean).clamp_(0.0, 1.0)

    def head(self, x: Tensor) -> Tensor:
        mu, logvar = self.vae.encode(x)
        z = reparameterize(mu, logvar) if self.training else mu
        x_hat = self.vae.decode(z)
        return torch.cat([x.flatten(1), x_hat.flatten(1), mu.flatten(1), logvar.flatten(1)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@dataclass
class TrainedVAE:
    model: VAE
    history: pd.DataFrame
    best_epoch: int
    seconds: float
    terms: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-epoch loss terms (TermLog)

    def final_terms(self) -> dict[str, float]:
        """The kept epoch's loss terms (NaN when none were logged)."""
        if self.terms.empty:
            return dict.fromkeys(TermLog.NAMES, float("nan"))
        row = self.terms[self.terms["epoch"] == self.best_epoch]
        row = row if len(row) else self.terms.tail(1)
        return {k: float(row[k].iloc[0]) for k in TermLog.NAMES}


def train_vae(
    images: np.ndarray,
    select: np.ndarray,
    study: VAEStudy,
    phi: FeatureNet | None,
    seed: int,
    desc: str = "vae",
) -> TrainedVAE:
    """Train one VAE on uint8 images (N, H, W, 3) with the one loop; the last epoch (``select: last``)
    or the one with the lowest loss on the ``select`` images (never fitted) is kept."""
    from fairmed.train.config import StrategySpec, TrainConfig
    from fairmed.train.data import TensorData
    from fairmed.train.loop import fit, resolve_device
    from fairmed.train.strategies import Strategy

    cfg = study.vae
    torch.manual_seed(seed)
    vae = VAE(cfg)

    def data(x: np.ndarray) -> TensorData:
        n = len(x)
        return TensorData(
            x=torch.from_numpy(np.ascontiguousarray(x)),
            y=torch.zeros(n, dtype=torch.int64),
            g=torch.full((n,), -1, dtype=torch.int64),
            ids=np.array([f"r{i}" for i in range(n)], dtype=object),
        )

    device = resolve_device(study.device)
    if phi is not None:
        phi = phi.to(device)
    objective = VAEObjective(
        image_numel=3 * cfg.image_size**2,
        latent_numel=int(np.prod(cfg.latent_shape)),
        obs_var=cfg.obs_var,
        beta=cfg.beta,
        perceptual_weight=cfg.perceptual_weight,
        phi=phi if cfg.perceptual_weight > 0 else None,
        image_shape=(3, cfg.image_size, cfg.image_size),
    )
    train_d = data(images)
    strategy = Strategy(StrategySpec(), _vae_task(objective), feature_dim=0, train=train_d)
    config = TrainConfig(
        epochs=study.epochs,
        batch_size=study.batch_size,
        lr=study.lr,
        scheduler="none",
        select=study.select,
        device=study.device,
        seed=seed,
        num_threads=study.num_threads,
        eval_batch_size=256,
    )
    net = VAETrainable(vae)
    result = fit(net, strategy, train_d, data(select), config, desc)
    objective.terms.close_epoch()
    terms = objective.terms.frame()
    _warn_inert_perceptual(terms, cfg.perceptual_weight, desc)
    return TrainedVAE(vae, result.history, result.best_epoch, result.seconds, terms)


def _warn_inert_perceptual(terms: pd.DataFrame, weight: float, desc: str) -> None:
    """Surface a perceptual term too small to change the fit (below INERT_SHARE of the reconstruction)."""
    if weight <= 0 or terms.empty:
        return
    share = float(terms["perceptual_share"].iloc[-1])
    if share < INERT_SHARE:
        log.warning(
            "%s: the weighted perceptual term is %.2g of the reconstruction term in the last epoch (below"
            " %g): it does next to nothing; raise vae.perceptual_weight or lower obs_var's weight",
            desc,
            share,
            INERT_SHARE,
        )


# -------------------------------------------------------------------------- one repeat
def cohort_images(cohort: Cohort, size: int, cache_dir: str | Path | None = None) -> np.ndarray:
    """uint8 (N, size, size, 3) pixels of every row (in-memory images or the decoded-image cache)."""
    from fairmed.data.images import load_images

    arr = load_images(cohort, size, cache_dir=cache_dir, strict=True)
    return np.asarray(arr.pixels)


def run_repeat(
    cohort: Cohort,
    study: VAEStudy,
    repeat: int,
    *,
    images: np.ndarray | None = None,
    phi: tuple[FeatureNet, PhiInfo] | None = None,
    fractions: list[float] | None = None,
    examples_dir: str | Path | None = None,
    example_rows: bool = False,
) -> pd.DataFrame:
    """Repeat ``repeat``: train one VAE per dark fraction and score both test sets (Predictions rows).

    ``examples_dir`` saves the first ``study.examples`` test images of each group and their
    reconstructions as ``.npz``; ``example_rows`` returns them instead as extra rows with
    ``split = "examples"`` (uint8 bytes in ``image`` / ``recon``), which the audit does not read.
    """
    spec = GroupSpec.parse(study.groups)
    groups = spec.assign(cohort.table).groups
    proto = study.protocol
    present = set(groups.dropna().astype(str).unique())
    for g in (proto.light, proto.dark):
        if g not in present:
            raise DataError(
                f"{cohort.name}: no rows in group {g!r} under groups {study.groups!r} (found {present})"
            )
    draw = draw_protocol(groups, proto, study.seed, repeat, n_select=study.val_rows)
    pixels = cohort_images(cohort, study.vae.image_size) if images is None else images
    if phi is None and study.vae.perceptual_weight > 0:
        phi = study_phi(study)
    net, info = phi if phi is not None else (None, None)
    names = fraction_names(proto.dark_fractions)
    attrs = [a for a in cohort.attributes if a in cohort.table.columns]
    rows = []
    for f in fractions if fractions is not None else proto.dark_fractions:
        seed = study.seed * 100_003 + repeat * 101 + proto.dark_fractions.index(f)
        trained = train_vae(
            pixels[draw.train[f]], pixels[draw.select[f]], study, net, seed, desc=f"vae r{repeat} {names[f]}"
        )
        device = next(trained.model.parameters()).device
        for group in (proto.light, proto.dark):
            test = draw.test[group]
            want = examples_dir is not None or example_rows
            out = evaluate(trained.model, pixels[test], seed=seed, device=device, return_recon=want)
            table = cohort.table.iloc[test]
            frame = pd.DataFrame(
                {
                    "study": KIND,
                    "config": names[f],
                    "method": study.method(),
                    "seed": repeat,
                    "split": "test",
                    "id": table["id"].to_numpy(),
                    **{v: out[v] for v in VALUES},
                    "dark_fraction": f,
                    "test_group": group,
                    "best_epoch": trained.best_epoch,
                    "train_seconds": trained.seconds,
                    "mse_scale": study.vae.mse_scale,
                    "obs_var": study.vae.obs_var,
                    "select": study.select,
                    **trained.final_terms(),
                    **phi_columns(info, len(test)),
                }
            )
            for a in attrs:
                frame[a] = table[a].to_numpy()
            for lab in cohort.labels:  # every label granularity, by name, for the disease-distribution check
                frame[f"label_{lab}"] = _label_names(cohort, lab, table[lab])
            for lab in GRANULARITIES:  # Fitzpatrick17k's other partitions when the table keeps them
                if lab in table.columns and lab not in cohort.labels:
                    frame[f"label_{lab}"] = (
                        table[lab].astype(object).where(table[lab].notna(), None).to_numpy()
                    )
            rows.append(frame)
            if examples_dir is not None and study.examples:
                _save_examples(
                    Path(examples_dir),
                    example_stem(study.method(), names[f], group, repeat),
                    pixels[test],
                    out["recon"],
                    study.examples,
                )
            if example_rows and study.examples:
                k = min(study.examples, len(test))
                keys = {c: frame[c].iloc[:k].to_numpy() for c in ("study", "config", "method", "seed", "id")}
                rows.append(
                    pd.DataFrame(
                        {
                            **keys,
                            "split": EXAMPLES,
                            "dark_fraction": f,
                            "test_group": group,
                            "image": [pixels[test[i]].tobytes() for i in range(k)],
                            "recon": [out["recon"][i].tobytes() for i in range(k)],
                            "size": pixels.shape[1],
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def phi_columns(info: PhiInfo | None, n: int) -> dict[str, object]:
    """Which Phi scored a run, as Predictions columns: source, weights file, conv layers, fallback seed.

    ``none`` (plain VAE) has no weights, 0 layers and no seed; nullable integers keep runs concatenable.
    """
    if info is None:
        info = PhiInfo("none", None, 0, None, "none")
    return {
        "phi": info.source,
        "phi_tap": info.tap,
        "phi_weights": info.weights,
        "phi_layers": pd.array([info.n_layers] * n, dtype="Int64"),
        "phi_seed": pd.array([info.seed] * n, dtype="Int64"),
    }


def _label_names(cohort: Cohort, label: str, values: pd.Series) -> np.ndarray:
    """Condition names of label codes (the codes as text when the cohort has no names)."""
    names = cohort.class_names.get(label)
    codes = values.to_numpy()
    if not names:
        return np.array([None if pd.isna(c) else str(c) for c in codes], dtype=object)
    lookup = np.array([*names, None], dtype=object)
    idx = np.where(pd.isna(values).to_numpy(), len(names), pd.to_numeric(values, errors="coerce").fillna(-1))
    return lookup[np.asarray(idx, dtype=np.int64)]


def example_stem(method: str, config: str, group: str, repeat: int) -> str:
    """File stem of one example grid: ``vae_examples_<method>_<training set>_<group>_r<repeat>``."""
    return "vae_examples_" + "".join(
        c if c.isalnum() else "_" for c in f"{method}_{config}_{group}_r{repeat}"
    )


def _save_examples(folder: Path, stem: str, x, x_hat, k: int) -> None:
    """The first ``k`` test images of a group and their reconstructions (uint8) as ``<stem>.npz``."""
    from fairmed.io import atomic_write

    def write(path) -> None:
        with open(path, "wb") as fh:  # a handle: np.savez would append ".npz" to the temp name
            np.savez_compressed(fh, image=x[:k], recon=x_hat[:k])

    atomic_write(folder / f"{stem}.npz", write)


def study_phi(study: VAEStudy) -> tuple[FeatureNet, PhiInfo]:
    """Phi as the settings ask (weights file or the random fallback, conv layers, tap), after the
    paper profile's weights check."""
    check_phi(study)
    cfg = study.vae
    return load_phi(cfg.perceptual_weights, cfg.perceptual_layers, seed=study.seed, tap=cfg.perceptual_tap)


def run_vae_study(
    cohort: Cohort, study: VAEStudy, examples_dir: str | Path | None = None, repeats: list[int] | None = None
) -> pd.DataFrame:
    """All repeats (images decoded and Phi built once); Predictions of every test image of every VAE."""
    pixels = cohort_images(cohort, study.vae.image_size)
    phi = study_phi(study) if study.vae.perceptual_weight > 0 else None
    reps = range(study.protocol.repeats) if repeats is None else repeats
    return pd.concat(
        [run_repeat(cohort, study, r, images=pixels, phi=phi, examples_dir=examples_dir) for r in reps],
        ignore_index=True,
    )


# ---------------------------------------------------------------------------- analysis
def value_summary(predictions: pd.DataFrame, value: str = "recon_mse") -> pd.DataFrame:
    """Per (method, training set, test group): mean, median, quartiles, n of a per-sample value."""
    keys = ["method", "config", "dark_fraction", "test_group"]
    g = predictions.groupby(keys, sort=False)[value]
    out = g.agg(
        mean="mean", median="median", q25=lambda s: s.quantile(0.25), q75=lambda s: s.quantile(0.75), n="size"
    )
    out = out.reset_index()
    out.insert(len(keys), "value", value)
    return out.sort_values(["method", "dark_fraction", "test_group"]).reset_index(drop=True)


REPEAT = "seed"  # the run key that numbers the protocol's repeats: the unit of replication


def _repeat_means(predictions: pd.DataFrame, value: str, keys: list[str]) -> pd.Series:
    """Mean ``value`` per ``keys`` and repeat (one repeat when the Predictions carry no repeat key)."""
    frame = predictions if REPEAT in predictions.columns else predictions.assign(**{REPEAT: 0})
    return frame.groupby([*keys, REPEAT])[value].mean()


def _repeat_test(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """Wilcoxon signed-rank of per-repeat means ``b`` vs ``a`` paired by repeat, with its exact floor."""
    from fairmed.metrics.stats import min_p_wilcoxon, paired_test

    a, b = a.align(b, join="inner")
    n = int((a.notna() & b.notna()).sum())
    p = paired_test(b, a)[1] if n >= 2 else float("nan")
    return {"n_repeats": n, "p": p, "p_floor": min_p_wilcoxon(n), "stars": "" if np.isnan(p) else stars(p)}


def compare_test_groups(
    predictions: pd.DataFrame, value: str = "recon_mse", light: str = "FST 1-2", dark: str = "FST 5-6"
) -> pd.DataFrame:
    """Per (method, training set): the light and dark test images' mean value, and whether they differ.

    The test is at the repeat level (a repeat's images share one trained VAE, so the repeat is the
    unit of replication): per repeat, the mean of each test group; the Wilcoxon signed-rank test of
    dark vs light over repeats (exact, floor 2 / 2^n: ``p_floor``) gives ``p`` and ``stars``.
    ``u_pooled`` / ``p_pooled``: the Mann-Whitney U over every repeat's images pooled, a descriptive
    addition only (pseudo-replicated: it treats images of one model as independent replicates).
    ``higher``: the test group with the higher mean (for MSE: the one worse off).
    """
    keys = ["method", "config", "dark_fraction"]
    means = _repeat_means(predictions, value, [*keys, "test_group"])
    rows = []
    for (method, config, frac), sub in predictions.groupby(keys, sort=False):
        a = sub.loc[sub["test_group"] == light, value].to_numpy(float)
        b = sub.loc[sub["test_group"] == dark, value].to_numpy(float)
        per_repeat = means.loc[(method, config, frac)]
        at = {
            g: per_repeat.xs(g, level="test_group")
            if g in per_repeat.index.get_level_values(0)
            else pd.Series(dtype=float)
            for g in (light, dark)
        }
        u, p_pooled = mann_whitney(a, b)
        diff = float(np.mean(b) - np.mean(a)) if len(a) and len(b) else np.nan
        rows.append(
            {
                "method": method,
                "config": config,
                "dark_fraction": frac,
                "value": value,
                "light_mean": float(np.mean(a)) if len(a) else np.nan,
                "dark_mean": float(np.mean(b)) if len(b) else np.nan,
                "dark_minus_light": diff,
                "higher": "" if np.isnan(diff) or diff == 0 else (dark if diff > 0 else light),
                **_repeat_test(at[light], at[dark]),
                "u_pooled": u,
                "p_pooled": p_pooled,
            }
        )
    return pd.DataFrame(rows).sort_values(["method", "dark_fraction"]).reset_index(drop=True)


def representation_trend(predictions: pd.DataFrame, value: str = "recon_mse") -> pd.DataFrame:
    """Per (method, test group): mean value at the lowest and highest dark fraction (does a group's
    error fall as its representation rises?), tested at the repeat level (a repeat's test sets are
    shared by its training sets: Wilcoxon signed-rank of the per-repeat means, paired by repeat);
    ``p_pooled``: the pooled-image Mann-Whitney U, descriptive only."""
    means = _repeat_means(predictions, value, ["method", "test_group", "dark_fraction"])
    rows = []
    for (method, group), sub in predictions.groupby(["method", "test_group"], sort=False):
        fr = sorted(sub["dark_fraction"].unique())
        lo = sub.loc[sub["dark_fraction"] == fr[0], value].to_numpy(float)
        hi = sub.loc[sub["dark_fraction"] == fr[-1], value].to_numpy(float)
        u, p_pooled = mann_whitney(lo, hi)
        rows.append(
            {
                "method": method,
                "test_group": group,
                "value": value,
                "low_fraction": fr[0],
                "high_fraction": fr[-1],
                "mean_at_low": float(lo.mean()),
                "mean_at_high": float(hi.mean()),
                **_repeat_test(means.loc[(method, group, fr[0])], means.loc[(method, group, fr[-1])]),
                "u_pooled": u,
                "p_pooled": p_pooled,
            }
        )
    return pd.DataFrame(rows)


def disease_prevalence(cohort: Cohort, study: VAEStudy, labels: list[str] | None = None) -> pd.DataFrame:
    """Normalised prevalence of each condition in the light and dark groups, per label column (Figs. 7).

    The normalised prevalence of a condition in a group is the share of that group's labelled images
    with it (summing to 1 over conditions in each group), so group sizes cancel and a point on y = x
    means the condition is equally common among light and dark images. Labels: the cohort's label
    columns plus Fitzpatrick17k's other partitions when the table keeps them.
    """
    spec = GroupSpec.parse(study.groups)
    groups = spec.assign(cohort.table).groups.astype(object)
    proto = study.protocol
    rows = []
    if labels is None:
        labels = [
            *cohort.labels,
            *(g for g in GRANULARITIES if g in cohort.table.columns and g not in cohort.labels),
        ]
    for label in labels:
        if label not in cohort.table.columns:
            continue
        names = cohort.class_names.get(label) if label in cohort.labels else None
        values = cohort.table[label]
        keep = groups.isin([proto.light, proto.dark]).to_numpy() & values.notna().to_numpy()
        ct = pd.crosstab(values[keep], groups[keep]).reindex(columns=[proto.light, proto.dark], fill_value=0)
        share = ct / ct.sum(axis=0).replace(0, np.nan)
        for code, r in share.iterrows():
            name = names[int(code)] if names is not None and str(code).lstrip("-").isdigit() else str(code)
            rows.append(
                {
                    "label": label,
                    "condition": name,
                    "light": float(r[proto.light]),
                    "dark": float(r[proto.dark]),
                    "n_light": int(ct.loc[code, proto.light]),
                    "n_dark": int(ct.loc[code, proto.dark]),
                }
            )
    return pd.DataFrame(rows)


def label_columns(predictions: pd.DataFrame) -> list[str]:
    """The label granularities carried in Predictions (``label_<name>`` columns)."""
    return [c for c in predictions.columns if c.startswith("label_")]


def prevalence_from_predictions(
    predictions: pd.DataFrame, light: str = "FST 1-2", dark: str = "FST 5-6"
) -> pd.DataFrame:
    """Normalised prevalence per condition in the light and dark test sets (each image once per repeat).

    The test sets are uniform draws from each group, so this estimates the groups' prevalences.
    """
    rows = []
    once = predictions.drop_duplicates(["seed", "id", "test_group"])
    for col in label_columns(once):
        sub = once[once["test_group"].isin([light, dark]) & once[col].notna()]
        ct = pd.crosstab(sub[col], sub["test_group"]).reindex(columns=[light, dark], fill_value=0)
        share = ct / ct.sum(axis=0).replace(0, np.nan)
        for cond, r in share.iterrows():
            rows.append(
                {
                    "label": col.removeprefix("label_"),
                    "condition": str(cond),
                    "light": float(r[light]),
                    "dark": float(r[dark]),
                    "n_light": int(ct.loc[cond, light]),
                    "n_dark": int(ct.loc[cond, dark]),
                }
            )
    return pd.DataFrame(rows, columns=["label", "condition", "light", "dark", "n_light", "n_dark"])


def mse_by_condition(
    predictions: pd.DataFrame, label: str, light: str = "FST 1-2", dark: str = "FST 5-6"
) -> pd.DataFrame:
    """Mean MSE per condition of ``label`` (a ``label_<name>`` column), light vs dark, per training set (Fig. 8)."""
    col = label if label.startswith("label_") else f"label_{label}"
    g = predictions.groupby(["method", "config", "dark_fraction", col, "test_group"], sort=False)["recon_mse"]
    stats = g.agg(["mean", "size"]).reset_index()
    mean = stats.pivot_table(
        index=["method", "config", "dark_fraction", col], columns="test_group", values="mean"
    )
    size = stats.pivot_table(
        index=["method", "config", "dark_fraction", col], columns="test_group", values="size"
    )
    out = pd.DataFrame(
        {
            "light": mean.get(light),
            "dark": mean.get(dark),
            "n_light": size.get(light),
            "n_dark": size.get(dark),
        }
    ).reset_index()
    return out.rename(columns={col: "condition"}).assign(label=col.removeprefix("label_"))


def _p_text(r: pd.Series) -> str:
    """ "Wilcoxon over 10 repeats p = 0.002; pooled images, descriptive: MWU p = 5e-06" """
    if r["n_repeats"] < 2:
        repeat = "one repeat: no test"
    else:
        repeat = f"Wilcoxon signed-rank over {r['n_repeats']} repeats p = {r['p']:.2g}"
        if r["p_floor"] > 0.05:
            repeat += f", the smallest possible with {r['n_repeats']} repeats being {r['p_floor']:.2g}"
    return f"{repeat}; pooled images, descriptive only: MWU p = {r['p_pooled']:.2g}"


def summary_text(
    predictions: pd.DataFrame, light: str = "FST 1-2", dark: str = "FST 5-6", alpha: float = 0.05
) -> list[str]:
    """The three questions of the paper, answered in one sentence each from the Predictions: tested at
    the repeat level; a reversal (the other test group now worse off) is named as such."""
    out = []
    trend = representation_trend(predictions)
    for _, r in trend.iterrows():
        falls = r["test_group"] == dark and r["mean_at_high"] < r["mean_at_low"]
        rises = r["test_group"] == light and r["mean_at_high"] > r["mean_at_low"]
        verdict = "as expected" if (falls or rises) else "not as expected"
        out.append(
            f"{r['method']}: {r['test_group']} mean MSE {r['mean_at_low']:.4g} at {r['low_fraction']:.0%} dark vs"
            f" {r['mean_at_high']:.4g} at {r['high_fraction']:.0%} dark ({_p_text(r)}; {verdict})."
        )
    for value, what in (("recon_mse", "MSE"), ("latent_std", "latent std")):
        if value not in predictions.columns:
            continue
        cmp = compare_test_groups(predictions, value, light, dark)
        for method, rows in cmp.groupby("method", sort=False):
            first = rows.iloc[0]["higher"]  # who is worse off with the fewest dark training images
            for _, r in rows.iterrows():
                if value == "latent_std" and not np.isclose(r["dark_fraction"], 0.5):
                    continue
                sig = (
                    "untested"
                    if np.isnan(r["p"])
                    else "significant"
                    if r["p"] <= alpha
                    else "not significant"
                )
                turn = ""
                if value == "recon_mse" and r["higher"]:
                    reversed_ = first and r["higher"] != first
                    turn = (
                        f" reversed against {rows.iloc[0]['config']}: {r['higher']} now has the higher MSE;"
                        if reversed_
                        else f" {r['higher']} has the higher MSE;"
                    )
                out.append(
                    f"{method}, {r['config']}: {what} {light} {r['light_mean']:.4g} vs {dark} {r['dark_mean']:.4g};"
                    f"{turn} {sig} at {alpha} ({_p_text(r)})."
                )
    return out


def analyse(
    out_dir: str | Path, spec=None, predictions: pd.DataFrame | None = None, results=None
) -> dict[str, Path]:
    """Write the study's tidy tables under ``OUT/tables/`` (what the report section draws)."""
    from fairmed.io import write_table

    preds = predictions
    if "split" in preds.columns:
        examples = preds[preds["split"] == EXAMPLES]
        if len(examples):
            write_examples(Path(out_dir) / "artifacts", examples)
        preds = preds[preds["split"] == "test"]
    if not len(preds):
        return {}
    preds = preds.dropna(axis=1, how="all")
    light, dark = _light_dark(spec)
    tables = {
        "vae_summary": pd.concat(
            [value_summary(preds, v) for v in VALUES if v in preds.columns], ignore_index=True
        ),
        "vae_compare": pd.concat(
            [compare_test_groups(preds, v, light, dark) for v in VALUES if v in preds.columns],
            ignore_index=True,
        ),
        "vae_trend": representation_trend(preds),
        "vae_prevalence": prevalence_from_predictions(preds, light, dark),
    }
    labels = label_columns(preds)
    if labels:
        tables["vae_mse_by_condition"] = pd.concat([mse_by_condition(preds, c, light, dark) for c in labels])
    folder = Path(out_dir) / "tables"
    written = {}
    for name, table in tables.items():
        path = folder / f"{name}.parquet"
        write_table(table.reset_index(drop=True), path)
        written[name] = path
    return written


def write_examples(folder: Path, rows: pd.DataFrame) -> None:
    """``split = examples`` rows (uint8 bytes) -> one ``vae_examples_<set>_<group>_r<repeat>.npz`` each."""
    keys = ["method", "config", "test_group", "seed"]
    for (method, config, group, seed), sub in rows.groupby(keys, sort=False):
        size = int(sub["size"].iloc[0])
        shape = (len(sub), size, size, 3)
        image = np.frombuffer(b"".join(sub["image"]), dtype=np.uint8).reshape(shape)
        recon = np.frombuffer(b"".join(sub["recon"]), dtype=np.uint8).reshape(shape)
        _save_examples(
            folder, example_stem(str(method), str(config), str(group), int(seed)), image, recon, len(sub)
        )


def _light_dark(spec) -> tuple[str, str]:
    proto = VAEProtocol()
    raw = spec if isinstance(spec, dict) else getattr(spec, "model_extra", None) or {}
    if isinstance(raw.get("protocol"), dict):
        proto = VAEProtocol.model_validate({**proto.model_dump(), **raw["protocol"]})
    return proto.light, proto.dark


# ------------------------------------------------------------------------ spec and driver
STUDY_FIELDS = set(VAEStudy.model_fields)


def study_from_spec(spec: dict) -> VAEStudy:
    """The study settings of a spec dict: its ``profile`` preset, then every ``VAEStudy`` field it names.

    Nested ``protocol`` / ``vae`` mappings update the preset's fields one by one.
    """
    profile = spec.get("profile", "cpu")
    if profile not in ("smoke", "cpu", "paper"):
        raise SpecError(f"vae study: profile must be smoke, cpu or paper, got {profile!r}")
    over = {k: v for k, v in spec.items() if k in STUDY_FIELDS}
    try:
        study = VAEStudy.model_validate(deep_merge(VAEStudy.profile(profile).model_dump(), over))
    except ValidationError as exc:
        raise validation_error("vae study", exc) from None
    check_phi(study)
    return study


def run_spec(
    path: str | Path, out_dir: str | Path, profile: str | None = None, jobs: int | None = None
) -> pd.DataFrame:
    """Run a ``kind: vae_fairness`` study YAML (or built-in name) with the study runner; its Predictions."""
    from fairmed.studies.runner import run_study

    return run_study(path, out_dir, profile=profile, jobs=jobs).predictions


# ------------------------------------------------------------ the study kind (fairmed.studies.kinds)
class VAEFields(BaseModel):
    """The kind's own spec fields; ``protocol`` / ``vae`` update the profile's preset field by field.

    Elsewhere in the spec: ``groups[0]`` gives light/dark (``fst:12-56``), ``design.seeds`` /
    ``design.repeats`` the repeats, ``train`` the loop settings (``epochs``, ``batch_size``, ``lr``,
    ``device``, ``num_threads``).
    """

    model_config = ConfigDict(extra="forbid")

    protocol: dict = Field(default_factory=dict, description="VAEProtocol fields (repeats come from design)")
    vae: dict = Field(default_factory=dict, description="VAEConfig fields")
    val_rows: int | None = Field(None, ge=1)
    examples: int | None = Field(None, ge=0)
    methods: list[Literal["vae", "vae+perceptual"]] | None = Field(
        None,
        min_length=1,
        description="compare plain VAE and VAE + perceptual loss on the same draws (default: the one vae"
        " settings give)",
    )

    @model_validator(mode="after")
    def _check(self) -> VAEFields:
        if self.methods is not None and len(set(self.methods)) != len(self.methods):
            raise SpecError(f"vae_fairness: methods must be distinct, got {self.methods}")
        for cls, given, what in ((VAEProtocol, self.protocol, "protocol"), (VAEConfig, self.vae, "vae")):
            try:
                cls.model_validate(given)
            except ValidationError as exc:
                raise validation_error(what, exc) from None
        return self


_TRAIN_KEYS = ("epochs", "batch_size", "lr", "select", "device", "num_threads")


def study_of(spec) -> VAEStudy:
    """A StudySpec's VAE settings: the profile preset, then the kind fields and ``train`` overrides."""
    fields = spec.settings()
    groups = spec.groups[0] if spec.groups else "fst:12-56"
    if not isinstance(groups, str):
        raise SpecError("vae_fairness: groups[0] must be a short form such as 'fst:12-56'")
    raw = {
        "profile": spec.profile,
        "groups": groups,
        "protocol": dict(fields.protocol),
        "vae": _with_base(dict(fields.vae), spec.base_dir),
    }
    train = spec.train_settings()
    raw.update({k: v for k, v in train.items() if k in _TRAIN_KEYS})
    unknown = sorted(set(train) - set(_TRAIN_KEYS))
    if unknown:
        raise SpecError(
            f"train: {unknown[0]!r} is not a vae_fairness training setting ({', '.join(_TRAIN_KEYS)})"
        )
    for key in ("val_rows", "examples"):
        if getattr(fields, key) is not None:
            raw[key] = getattr(fields, key)
    return study_from_spec(raw)


def _with_base(vae: dict, base_dir: str | None) -> dict:
    """``perceptual_weights`` resolved against the spec's folder, as the source's paths are."""
    from fairmed.data.sources._common import resolve

    weights = vae.get("perceptual_weights")
    if weights is None:
        return vae
    return {**vae, "perceptual_weights": str(resolve(Path(weights), Path(base_dir) if base_dir else None))}


def expand(spec) -> list:
    """One run per (training set, method, repeat): configs are the training sets A, B, C, ...; methods the
    spec's ``methods`` (plain ``vae`` and/or ``vae+perceptual``) or the one its ``vae`` settings give."""
    study = study_of(spec)
    configs = {
        name: {"dark_fraction": f} for f, name in fraction_names(study.protocol.dark_fractions).items()
    }
    methods = spec.settings().methods or [study.method()]
    for m in methods:
        study.for_method(m)  # a one-line SpecError before any run starts
    return grid_runs(spec, {m: {} for m in methods}, configs)


def execute(run) -> pd.DataFrame:
    """Train the run's VAE (repeat = seed) and score both test sets; example reconstructions as extra rows."""
    spec = run.study_spec()
    study = study_of(spec).for_method(run.method)
    cohort = load_cohort(spec)
    return run_repeat(
        cohort, study, run.seed, fractions=[float(run.params["dark_fraction"])], example_rows=True
    )


def analyse_kind(out_dir: Path, spec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """The kind's tables and example images (see :func:`analyse`)."""
    study = study_of(spec)
    analyse(out_dir, {"protocol": study.protocol.model_dump()}, predictions, results)


STUDY_KIND = StudyKind(
    name=KIND,
    expand=expand,
    execute=execute,
    analyse=analyse_kind,
    fields=VAEFields,
    description="residual VAE + perceptual loss on training sets of 0/50/100% dark skin; per-image "
    "reconstruction MSE and latent std of light vs dark test images (Mann-Whitney U)",
)
