"""Networks, chosen by name.

Every network is a plain ``nn.Module`` built by a small factory function registered with
``@register_model(spec=...)``. The :class:`ModelSpec` declared there is the one place that
says what the network outputs (ab, rgb, logits over ab bins, critic logits), its stride and
its native working size; ``create_model`` attaches it to the model as ``model.spec``.
Families live one per file and are imported explicitly below, so a name is found by
reading this file, not by scanning folders. Blocks shared by families are in ``layers``.

How to add a model (the full walk-through is docs/ADDING_A_MODEL.md):
    1. Write the ``nn.Module`` in a file of its family (or a new file), taking L_n
       ``(B, 1, H, W)`` in [-1, 1] and returning what its spec's ``output`` promises.
    2. Add a factory decorated with ``@register_model(spec=ModelSpec(...))``; where the
       stride or size depend on the factory's arguments, ``spec`` is a function of them.
    3. Import the module below.
"""

from .registry import create_model, describe, list_models, model_spec, register_model, spec_of
from .spec import ModelSpec

from . import damage, effunet, pix2pix, resnet, simple, unet, zhang  # noqa: E402,F401  (each registers its models)

__all__ = ["ModelSpec", "create_model", "describe", "list_models", "model_spec", "register_model", "spec_of"]
