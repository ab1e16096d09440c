"""Report sections of the ``vae_fairness`` study (López-Pérez et al. 2025).

- reconstruction MSE (Fig. 3) and mean latent std (Fig. 6): box plots per training set and test
  group from the per-image Predictions, stars between the two test groups at the repeat level
  (Wilcoxon signed-rank over repeats of the per-repeat means);
- example reconstructions of light and dark test images under each training set (Figs. 4-5), from
  ``OUT/artifacts/vae_examples_*.npz``;
- disease distribution (Figs. 7-8): normalised prevalence per condition light vs dark with y = x per
  label granularity, and mean MSE per condition light vs dark per training set (``OUT/tables``);
- a short text answer to the study's three questions.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fairmed.report.sections import Section, register_section
from fairmed.report.style import group_colors, new_figure
from fairmed.studies.vae import KIND, compare_test_groups, example_stem, summary_text

TITLES = {"recon_mse": "reconstruction MSE", "latent_std": "mean latent std"}


def axis_label(preds: pd.DataFrame, value: str) -> str:
    """The y label; for MSE the pixel scale recorded in the Predictions (``mse_scale``: 1 or 255)."""
    title = TITLES.get(value, value)
    if value != "recon_mse" or "mse_scale" not in preds.columns:
        return title
    scales = sorted(set(preds["mse_scale"].dropna().astype(float)))
    if len(scales) != 1:
        return f"{title} (mixed pixel scales {scales})"
    return f"{title} (pixels in [0, {scales[0]:g}])"


def _predictions(ctx) -> pd.DataFrame | None:
    preds = ctx.predictions
    if preds is None or "recon_mse" not in preds.columns or "test_group" not in preds.columns:
        return None
    if "split" in preds.columns:
        preds = preds[preds["split"] == "test"]
    return preds if len(preds) else None


def _groups(preds: pd.DataFrame) -> tuple[str, str]:
    names = list(dict.fromkeys(preds["test_group"].astype(str)))
    light = "FST 1-2" if "FST 1-2" in names else names[0]
    dark = "FST 5-6" if "FST 5-6" in names else names[-1]
    return light, dark


def box_figure(ctx, preds: pd.DataFrame, value: str, name: str):
    """One panel per method; per training set the two test groups' per-image values, with MWU stars."""
    light, dark = _groups(preds)
    methods = list(dict.fromkeys(preds["method"].astype(str)))
    order = preds.drop_duplicates("config").sort_values("dark_fraction")["config"].astype(str).tolist()
    fig = new_figure(1.2 + 1.5 * len(order) * len(methods), 4.0)
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    width = 0.36
    x = np.arange(len(order))
    fallback = group_colors([light, dark])
    color = {g: ctx.colors.get(g) or fallback[g] for g in (light, dark)}
    for ax, method in zip(axes, methods):
        sub = preds[preds["method"].astype(str) == method]
        for k, group in enumerate((light, dark)):
            data = [
                sub.loc[(sub["config"] == c) & (sub["test_group"] == group), value].to_numpy(float)
                for c in order
            ]
            keep = [i for i, d in enumerate(data) if len(d)]
            if not keep:
                continue
            box = ax.boxplot(
                [data[i] for i in keep],
                positions=x[keep] + (k - 0.5) * width,
                widths=width * 0.9,
                patch_artist=True,
                showfliers=False,
                medianprops={"color": "black"},
            )
            for patch in box["boxes"]:
                patch.set_facecolor(color[group])
                patch.set_alpha(0.85)
            ax.plot([], [], "s", color=color[group], label=f"test {group}")
        cmp = compare_test_groups(sub, value, light, dark).set_index("config")
        for i, c in enumerate(order):
            if c in cmp.index:
                ax.annotate(
                    cmp.loc[c, "stars"],
                    (x[i], _whisker_top(sub, c, value)),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=10,
                )
        ax.set_xticks(x, [c.replace(" (", "\n(") for c in order])
        ax.set_title(method)
        ax.set_xlabel("training set")
    axes[0].set_ylabel(axis_label(preds, value))
    lo, hi = axes[0].get_ylim()
    axes[0].set_ylim(lo, hi + 0.08 * (hi - lo))  # room for the stars under the title
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    return ctx.save(fig, name)


def _whisker_top(sub: pd.DataFrame, config: str, value: str) -> float:
    """Highest upper whisker (q75 + 1.5 IQR, capped at the data) of a training set's two boxes."""
    tops = []
    for _, vals in sub.loc[sub["config"] == config].groupby("test_group")[value]:
        v = vals.to_numpy(float)
        q25, q75 = np.nanquantile(v, [0.25, 0.75])
        tops.append(np.nanmax(v[v <= q75 + 1.5 * (q75 - q25)]))
    return float(max(tops))


def phi_notes(preds: pd.DataFrame) -> list[str]:
    """One line per method naming the feature network Phi its runs used (from the Predictions)."""
    if "phi" not in preds.columns:
        return []
    cols = [c for c in ("method", "phi", "phi_weights", "phi_layers", "phi_seed") if c in preds.columns]
    notes = []
    for _, r in preds[cols].drop_duplicates().iterrows():
        source, layers = str(r["phi"]), r.get("phi_layers")
        if source == "imagenet_file":
            what = f"ImageNet VGG-19 from {r.get('phi_weights')}, first {layers} conv layers"
        elif source == "random_fallback":
            what = (
                f"the fallback feature network (VGG-19 with fixed random weights, seed {r.get('phi_seed')},"
                f" first {layers} conv layers), not ImageNet VGG-19: give vae.perceptual_weights to reproduce"
                " the paper's loss"
            )
        else:
            what = "no perceptual loss"
        notes.append(f"{r['method']}: Phi = {what}.")
    return notes


COMPARE_TITLE = (
    "Light vs dark test images per training set: means; p, stars: Wilcoxon signed-rank over repeats of the "
    "per-repeat means (p_floor: its smallest possible p); u_pooled, p_pooled: Mann-Whitney U over the pooled "
    "images, descriptive only (images of one VAE are not independent replicates)"
)


def _floor(preds: pd.DataFrame) -> str:
    """The stars the repeat-level test cannot give with this many repeats (next to the legend)."""
    from fairmed.metrics.stats import min_p_wilcoxon, star_floor_note

    n = int(preds["seed"].nunique()) if "seed" in preds.columns else 1
    if n < 2:
        return " One repeat: no test."
    note = star_floor_note(min_p_wilcoxon(n), "Wilcoxon signed-rank test", f"{n} repeats")
    return f" {note}" if note else ""


@register_section(KIND)
def reconstruction_and_uncertainty(ctx) -> list[Section]:
    preds = _predictions(ctx)
    if preds is None:
        return []
    light, dark = _groups(preds)
    figs, caps = [], []
    for value, name, cap in (
        ("recon_mse", "vae_mse_boxes", "Fig. 3: reconstruction MSE of each test image"),
        ("latent_std", "vae_latent_std_boxes", "Fig. 6: mean latent standard deviation of each test image"),
    ):
        if value in preds.columns:
            figs.append(box_figure(ctx, preds, value, name))
            caps.append(
                f"{cap}, per training set and test group over all repeats; stars: {dark} vs {light} within each "
                "training set at the repeat level (per-repeat means, Wilcoxon signed-rank over repeats; ns p > 0.1, "
                "* p <= 0.1, ** <= 0.01, *** <= 0.001, **** <= 1e-4)." + _floor(preds)
            )
    tables = {}
    cmp = ctx.tables.get("vae_compare")
    if cmp is not None:
        tables[COMPARE_TITLE] = cmp
    notes = phi_notes(preds)
    return [
        Section(
            "Generative fairness: reconstruction error and latent uncertainty",
            intro=" ".join(summary_text(preds, light, dark)),
            figures=figs,
            captions=caps,
            tables=tables,
            notes=notes,
        )
    ]


def _example_files(ctx) -> dict[str, object]:
    return {path.stem: path for path in sorted((ctx.out_dir / "artifacts").glob("vae_examples_*_r0.npz"))}


@register_section(KIND)
def example_reconstructions(ctx) -> list[Section]:
    preds = _predictions(ctx)
    files = _example_files(ctx)
    if preds is None or not files:
        return []
    light, dark = _groups(preds)
    order = preds.drop_duplicates("config").sort_values("dark_fraction")["config"].astype(str).tolist()
    methods = list(dict.fromkeys(preds["method"].astype(str)))
    figs, caps = [], []
    for method in methods:
        for group in (light, dark):
            rows = []
            for config in order:
                stem = example_stem(method, config, group, 0)
                if stem in files:
                    with np.load(files[stem]) as data:
                        rows.append((config, data["image"], data["recon"]))
            if not rows:
                continue
            name = re.sub(r"[^0-9a-z]+", "_", group.lower())
            if len(methods) > 1:
                name = f"{re.sub(r'[^0-9a-z]+', '_', method)}_{name}"
            figs.append(_example_figure(ctx, rows, f"vae_examples_{name}"))
            caps.append(
                f"Figs. 4-5: {group} test images (top) and their reconstructions by the {method} of each"
                " training set (repeat 0)"
            )
    return [Section("Example reconstructions", figures=figs, captions=caps)]


def _example_figure(ctx, rows: list, name: str):
    """Inputs on top, one row of reconstructions per training set."""
    k = rows[0][1].shape[0]
    fig = new_figure(1.0 + 1.1 * k, 1.1 * (len(rows) + 1))
    axes = fig.subplots(len(rows) + 1, k, squeeze=False)
    for j in range(k):
        axes[0, j].imshow(rows[0][1][j])
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center")
    for i, (config, _, recon) in enumerate(rows, start=1):
        for j in range(k):
            axes[i, j].imshow(recon[j])
        axes[i, 0].set_ylabel(config.replace(" (", "\n("), rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return ctx.save(fig, name)


MAX_NAMED = 8  # conditions named in a scatter: all when few, else those furthest from y = x


def _name_points(ax, sub: pd.DataFrame) -> None:
    """Write each condition's name beside its point (or the MAX_NAMED furthest from y = x), so a reader
    can tell which conditions the skin tones disagree on."""
    far = (sub["dark"] - sub["light"]).abs().sort_values(ascending=False).index[:MAX_NAMED]
    for i in far:
        ax.annotate(
            str(sub.at[i, "condition"]),
            (float(sub.at[i, "light"]), float(sub.at[i, "dark"])),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=7,
            color="#333333",
        )


@register_section(KIND)
def disease_distribution(ctx) -> list[Section]:
    prev = ctx.tables.get("vae_prevalence")
    by_cond = ctx.tables.get("vae_mse_by_condition")
    if prev is None or not len(prev):
        return []
    figs, caps = [], []
    labels = list(dict.fromkeys(prev["label"]))
    fig = new_figure(0.6 + 3.2 * len(labels), 3.4)
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    for ax, label in zip(axes, labels):
        sub = prev[prev["label"] == label]
        ax.scatter(sub["light"], sub["dark"], s=18, color="#0072B2")
        _name_points(ax, sub)
        hi = float(np.nanmax(sub[["light", "dark"]].to_numpy())) * 1.05 if len(sub) else 1.0
        ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--")
        ax.set(title=label, xlabel="prevalence, light", ylabel="prevalence, dark", xlim=(0, hi), ylim=(0, hi))
    figs.append(ctx.save(fig, "vae_prevalence"))
    caps.append(
        "Fig. 7: normalised prevalence of each condition in the light and dark test sets (y = x: equal)."
    )
    if by_cond is not None and len(by_cond):
        fine = by_cond[by_cond["label"] == by_cond["label"].iloc[-1]]
        preds = _predictions(ctx)
        mse = axis_label(preds, "recon_mse").replace("reconstruction ", "") if preds is not None else "MSE"
        configs = list(dict.fromkeys(fine.sort_values("dark_fraction")["config"]))
        methods = list(dict.fromkeys(fine["method"]))
        fig = new_figure(0.6 + 3.2 * len(configs), 0.4 + 3.0 * len(methods))
        axes = fig.subplots(len(methods), len(configs), squeeze=False, sharex=True, sharey=True)
        lo = float(np.nanmin(fine[["light", "dark"]].to_numpy()))
        hi = float(np.nanmax(fine[["light", "dark"]].to_numpy()))
        for row, method in zip(axes, methods):  # one row of panels per method
            for ax, config in zip(row, configs):
                sub = fine[(fine["config"] == config) & (fine["method"] == method)]
                ax.scatter(sub["light"], sub["dark"], s=18, color="#D55E00")
                _name_points(ax, sub)
                ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
                ax.set(title=f"{method}, {config}" if len(methods) > 1 else config)
            row[0].set_ylabel(f"mean {mse}, dark")
        for ax in axes[-1]:
            ax.set_xlabel(f"mean {mse}, light")
        figs.append(ctx.save(fig, "vae_mse_by_condition"))
        caps.append(
            f"Fig. 8: mean MSE per condition ({fine['label'].iloc[0]}) of light vs dark test images, per training set"
            f" (names: the {MAX_NAMED} conditions furthest from y = x, or all when fewer)."
        )
    return [Section("Disease distribution across skin tones", figures=figs, captions=caps)]
