"""The look shared by gradkit's pictures: one colour-blind-safe palette (Okabe & Ito), readable fonts.

Every figure uses the same colour for the same thing: an optimizer keeps its colour in every race
picture and on the page; training curves are blue, validation orange, test green in every run's report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
VERMILLION = "#D55E00"
BLUE = "#0072B2"
BLUISH_GREEN = "#009E73"
ORANGE = "#E69F00"
REDDISH_PURPLE = "#CC79A7"
SKY_BLUE = "#56B4E9"
BLACK = "#000000"
YELLOW = "#F0E442"  # too light for thin lines on white: used last

TRAIN, VALIDATION, TEST = BLUE, ORANGE, BLUISH_GREEN

RC: dict[RcKeyType, Any] = {
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
}


def pyplot(extra: str = "plot"):
    """matplotlib's pyplot on the Agg backend with ``RC`` applied, or an ImportError saying what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(f"drawing needs matplotlib: pip install 'gradkit[{extra}]'") from e
    plt.rcParams.update(RC)
    return plt
