"""The model registry: factories by name, each with its :class:`ModelSpec`.

The families (one file each) register their factories here with ``@register_model``;
``tinct.models`` imports every family, so importing it fills the registry.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch.nn as nn

from .spec import ModelSpec

Factory = Callable[..., nn.Module]
# A spec, or a function of the factory's keyword arguments (defaults filled in) giving one.
SpecDecl = ModelSpec | Callable[..., ModelSpec]

_REGISTRY: dict[str, tuple[Factory, SpecDecl]] = {}


def register_model(fn: Factory | None = None, *, spec: SpecDecl | None = None) -> Callable[[Factory], Factory]:
    """Decorator: register a factory under its function name, with its :class:`ModelSpec`.

    ``spec`` is a ``ModelSpec``, or (where stride or size follow the factory's arguments) a
    function called with every argument of the factory, defaults filled in, e.g.
    ``spec=lambda depth, **_: ModelSpec("ab", stride=2**depth, native_size=256)``.
    A duplicate name is an error.
    """
    if fn is not None or spec is None:  # the bare @register_model of before specs existed
        raise TypeError(f"{getattr(fn, '__name__', 'a model')}: declare its spec, @register_model(spec=ModelSpec(...))")
    if not isinstance(spec, ModelSpec) and not callable(spec):
        raise TypeError(f"spec must be a ModelSpec or a function returning one, got {spec!r}")

    def register(factory: Factory) -> Factory:
        name = factory.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = (factory, spec)
        return factory

    return register


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> tuple[Factory, SpecDecl]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_spec(name: str, **kwargs: Any) -> ModelSpec:
    """The spec of the model ``create_model(name, **kwargs)`` would build, without building it.

    Raises:
        KeyError: the name is not registered.
        TypeError: ``kwargs`` do not fit the factory.
    """
    factory, spec = _entry(name)
    if isinstance(spec, ModelSpec):
        return spec
    bound = inspect.signature(factory).bind(**kwargs)
    bound.apply_defaults()
    args: dict[str, Any] = {}
    for key, value in bound.arguments.items():  # a factory's **kwargs are passed on flat
        is_var = bound.signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD
        args.update(value if is_var else {key: value})
    resolved = spec(**args)
    if not isinstance(resolved, ModelSpec):
        raise TypeError(f"the spec function of model {name!r} returned {resolved!r}, not a ModelSpec")
    return resolved


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network by name, with ``spec``, ``arch`` and ``arch_kwargs`` set.

    Args:
        name: a name from ``list_models()``.
        **kwargs: passed to the factory (e.g. ``pretrained=False``).

    Raises:
        KeyError: the name is not registered (the message lists the known names).
    """
    factory, _ = _entry(name)
    spec = model_spec(name, **kwargs)
    model = factory(**kwargs)
    model.spec = spec
    model.arch = name  # arch and arch_kwargs are what checkpoints record to rebuild it
    model.arch_kwargs = dict(kwargs)
    return model


def spec_of(model: nn.Module) -> ModelSpec:
    """The spec of a model built by :func:`create_model` (or loaded from a checkpoint).

    A DistributedDataParallel (or other ``.module``) wrapper is looked through.

    Raises:
        TypeError: the model was not built by ``create_model``.
    """
    spec = getattr(model, "spec", None)
    if spec is None and isinstance(getattr(model, "module", None), nn.Module):
        spec = getattr(model.module, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"{type(model).__name__} has no ModelSpec: build it with tinct.models.create_model")
    return spec


def describe(name: str) -> str:
    """First line of the factory's docstring."""
    doc = _entry(name)[0].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
