"""One figure style for every fairmed report: readable fonts, a colour-blind-safe palette,
group colours that stay the same across every figure of a report, and atomic PNG + SVG output.

Figures are built on :class:`matplotlib.figure.Figure` directly (see :func:`new_figure`), never
through ``pyplot``: no GUI backend, no global figure registry, nothing to ``show()``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from fairmed.io import atomic_path
from fairmed.schema import OVERALL

# Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision
# deficiencies. Black is kept for the whole population ("overall"), not for groups.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
    "#F0E442",  # yellow
)
# Paul Tol's "muted" scheme, also colour-blind safe, for reports with more groups than Okabe-Ito has
TOL_MUTED: tuple[str, ...] = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
)
PALETTE: tuple[str, ...] = OKABE_ITO + TOL_MUTED
OVERALL_COLOR = "#000000"
PNG_DPI = 150
NEUTRAL_COLOR = "#7F7F7F"

STYLE: dict[str, object] = {
    "font.family": "DejaVu Sans",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "legend.frameon": False,
    "figure.titlesize": 13,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.7,
    "axes.axisbelow": True,
    "axes.prop_cycle": matplotlib.cycler(color=list(OKABE_ITO)),
    "lines.linewidth": 1.8,
    "savefig.dpi": 150,
    "figure.dpi": 100,
    "svg.fonttype": "none",  # keep text as text in SVG: searchable and editable for papers
    "svg.hashsalt": "fairmed",  # deterministic SVG ids
}


def apply_style() -> None:
    """Set fairmed's matplotlib style globally (rcParams); idempotent."""
    matplotlib.rcParams.update(STYLE)


_TOKEN = re.compile(r"(>=|<=|<|>)?(\d+(?:\.\d+)?)|([^\d<>=]+|[<>=]+)")


def _natural_key(text: str) -> list[tuple]:
    """Sort "FST 2" before "FST 10", and bins as they lie: "<40" < "40-60" < ">=60"."""
    key = []
    for op, number, other in _TOKEN.findall(str(text)):
        if number:
            key.append((0, float(number), {"<": -1, "<=": -1, ">": 1, ">=": 1}.get(op, 0), ""))
        else:
            key.append((1, 0.0, 0, other.lower()))
    return key


def ordered_groups(groups: Iterable[str]) -> list[str]:
    """Distinct group names in natural order ("overall" last), the order every figure uses."""
    distinct = {str(g) for g in groups if g is not None}
    named = sorted((g for g in distinct if g != OVERALL), key=_natural_key)
    return named + ([OVERALL] if OVERALL in distinct else [])


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """Map group names to palette colours, deterministically by name.

    The same set of names always gives the same colours (names are put in natural order
    first, so the order they are passed in does not matter); "overall" is always black.
    Within a report use :attr:`ReportContext.colors`, which is built once from every group
    of every attribute, so a group keeps its colour in every figure.
    """
    names = [g for g in ordered_groups(groups) if g != OVERALL]
    colors = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(names)}
    colors[OVERALL] = OVERALL_COLOR
    return colors


def colors_by_attribute(groups_by_attribute: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """One colour map for a whole report: each attribute's groups get distinct colours.

    Attributes are coloured independently (so "female"/"male" and "FST 1-2"/"FST 5-6" each
    start at the palette's first colours); a name shared by two attributes keeps the
    colour of the attribute that comes first in natural order.
    """
    merged: dict[str, str] = {OVERALL: OVERALL_COLOR}
    for attribute in ordered_groups(groups_by_attribute):
        for group, color in group_colors(groups_by_attribute[attribute]).items():
            merged.setdefault(group, color)
    return merged


def wrap_label(text: str, width: int = 14) -> str:
    """Wrap a long tick label onto several lines instead of letting labels overlap."""
    return "\n".join(textwrap.wrap(str(text), width=width, break_long_words=False)) or str(text)


def new_figure(width: float, height: float) -> Figure:
    """A styled figure with constrained layout (labels never overlap the axes), no pyplot.

    Sizes are inches; size figures by the number of groups/methods they show.
    """
    apply_style()
    fig = Figure(figsize=(max(width, 2.5), max(height, 2.0)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


def figure_name(*parts: object) -> str:
    """A safe file stem from readable parts: ("forest", "fst", "AUC") -> "forest_fst_auc"."""
    text = "_".join(str(p) for p in parts if p is not None and str(p) != "")
    text = text.replace(">=", "ge").replace("<=", "le").replace("<", "lt").replace(">", "gt")
    return _NAME_OK.sub("-", text).strip("-_.").lower() or "figure"


def save_figure(fig: Figure, figures_dir: str | Path, name: str) -> Path:
    """Write ``figures_dir/name.png`` and ``name.svg`` atomically; return the PNG path.

    The figure is cleared afterwards to free its memory (it is never shown).
    """
    figures_dir = Path(figures_dir)
    stem = figure_name(name)
    png = figures_dir / f"{stem}.png"
    # one raster draw at the PNG resolution runs the layout; freezing it lets the SVG reuse it
    fig.set_dpi(PNG_DPI)
    fig.canvas.draw()
    fig.set_layout_engine("none")
    with atomic_path(png) as tmp:
        Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).save(
            tmp, format="PNG", dpi=(PNG_DPI, PNG_DPI), pnginfo=_png_info()
        )
    with atomic_path(figures_dir / f"{stem}.svg") as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": "fairmed"})
    fig.clear()
    return png


def _png_info() -> PngInfo:
    info = PngInfo()
    info.add_text("Software", "fairmed")
    return info
