"""Data sets of the book.

- :mod:`molli_utils.data.toy2d`: the paper's 2D toys (mixture of two Gaussians, von Mises on the circle).
"""

from .toy2d import TOY2D, MixtureOfGaussians, VonMisesCircle, get_toy2d, load_toy2d, make_generator

__all__ = ["TOY2D", "MixtureOfGaussians", "VonMisesCircle", "get_toy2d", "load_toy2d", "make_generator"]
