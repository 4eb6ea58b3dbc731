"""Colour hints: what a user knows about a photo's colours, as a network input.

Two kinds, after Zhang et al. 2017 ("Real-Time User-Guided Image Colorization with Learned
Deep Priors"):

- **local hints**: points whose colour is known. A point is an (x, y) position and a
  colour; only the colour's ab is used (the lightness stays the photo's own). On the
  network's input grid they are a ``(B, 3, H, W)`` map: ab_n where a hint lies, 0
  elsewhere, and a mask channel (1 at hinted pixels);
- **a global hint**: a distribution over the 313 ab bins (e.g. a reference photo's
  palette), ``(B, 314)``: the distribution and a flag (1 = given; all zeros = none).

The package, one idea a module (everything is importable from ``tinct.hints``):

- :mod:`~tinct.hints.maps`: those two inputs (:func:`empty`, :func:`histogram`,
  :func:`global_hint`, :func:`resize_local`);
- :mod:`~tinct.hints.simulated`: hints drawn from the true colours, at random per step
  for training (:func:`simulate`, :func:`step_generator`) and fixed per photo for
  ``tinct evaluate --hints`` (:func:`truth_points`, :class:`TruePoint`);
- :mod:`~tinct.hints.points`: the user's points, :class:`Hint` (pixel or relative
  coordinates, any CSS colour name or hex, parsed by Pillow's ``ImageColor.getrgb``) and
  :func:`parse_hint`;
- :mod:`~tinct.hints.guides`: a :class:`Guide` gathers one photo's points and a reference
  photo's palette (:func:`reference_hint`) and rasterises its points onto whatever working
  grid the colorizer uses (:meth:`Guide.local`);
- :mod:`~tinct.hints.files`: the hints JSON file the web editor saves (:func:`load_hints`,
  :func:`save_hints`; format in docs/GUIDE.md);
- :mod:`~tinct.hints.spread`: the non-learned way to follow points: each point's colour
  correction spread over the automatic output (:func:`spread_rgb`, :func:`spread_grid`;
  docs/GUIDE.md);
- :mod:`~tinct.hints.palette`: the non-learned way to follow a reference: a bin model's
  distributions shifted until the photo's palette is the reference's (:func:`palette_shift`).
"""

from .files import FILE_VERSION, from_json, from_text, load_hints, save_hints, to_json
from .guides import REFERENCE_SIDE, Guide, guide, palette_hint, reference_hint
from .maps import GLOBAL_DIM, empty, global_hint, histogram, resize_local
from .points import DEFAULT_POINT_SIZE, MAX_POINT_SIZE, MAX_POINTS, Hint, HintError, colour_ab, parse_hint
from .simulated import HINT_PATCH, TruePoint, simulate, step_generator, truth_points
from .palette import palette_offsets, palette_shift
from .spread import SPREAD_SIGMA_L, SPREAD_SIGMA_XY, pixel_positions, spread_ab, spread_grid, spread_rgb

__all__ = [
    "DEFAULT_POINT_SIZE", "FILE_VERSION", "GLOBAL_DIM", "HINT_PATCH", "MAX_POINTS", "MAX_POINT_SIZE", "REFERENCE_SIDE",
    "SPREAD_SIGMA_L", "SPREAD_SIGMA_XY", "Guide", "Hint", "HintError", "TruePoint", "colour_ab", "empty",
    "from_json", "from_text", "global_hint", "guide", "histogram", "load_hints", "palette_hint", "palette_offsets",
    "palette_shift", "parse_hint", "pixel_positions", "reference_hint", "resize_local", "save_hints", "simulate",
    "spread_ab", "spread_grid", "spread_rgb", "step_generator", "to_json", "truth_points",
]
