"""tinct: automatic image colorization -- a grey photo in, a plausible colour photo out.

    >>> from tinct import Colorizer
    >>> Colorizer.load("default").colorize(pil_image)  # doctest: +SKIP
"""

from .colorizer import Colorizer

__all__ = ["Colorizer"]
__version__ = "0.1.0"
