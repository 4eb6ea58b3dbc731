"""Networks, chosen by name.

Every network is a plain ``nn.Module`` built by a small factory function registered with
``@register_model``. Families live one per file and are imported explicitly below, so a
name is found by reading this file, not by scanning folders.

How to add a model (the full walk-through is docs/ADDING_A_MODEL.md):
    1. Write the ``nn.Module`` in a file of its family (or a new file), taking L_n
       ``(B, 1, H, W)`` in [-1, 1] and returning what its ``output`` kind promises.
    2. Add a factory decorated with ``@register_model`` that sets ``model.output`` to
       ``"ab"`` (regression, ab_n), ``"rgb"`` (sRGB in [0, 1]), ``"bins313"`` /
       ``"bins16x16"`` (logits over ab bins) or ``"critic"`` (a GAN discriminator), plus
       ``model.native_size`` (working side length) and ``model.stride`` (input sides must
       be multiples of it).
    3. Import the module below.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name; a duplicate name is an error."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered network by name.

    Args:
        name: a name from ``list_models()``.
        **kwargs: passed to the factory (e.g. ``pretrained=False``).

    Raises:
        KeyError: the name is not registered (the message lists the known names).
    """
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    model = _REGISTRY[name](**kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model


def describe(name: str) -> str:
    """First line of the factory's docstring."""
    doc = _REGISTRY[name].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


from . import effunet  # noqa: E402,F401  (registers its models)
from . import pix2pix, resnet, simple, unet, zhang  # noqa: E402,F401
