"""What a network promises its callers: the one declared, typed description of a model.

Every registered model declares a :class:`ModelSpec` beside its factory
(``@register_model(spec=...)``); ``create_model`` attaches it as ``model.spec``. The
colorizer, the ONNX exporter, training and the tests read the output kind, the stride and
the native size from there and nowhere else.

This module imports nothing from torch, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

Output = Literal["ab", "rgb", "bins", "critic", "mask"]
BinSet = Literal["313", "16x16"]

OUTPUTS: tuple[str, ...] = get_args(Output)
BIN_SETS: tuple[str, ...] = get_args(BinSet)
_BIN_CHANNELS = {"313": 313, "16x16": 256}
_CHANNELS = {"ab": 2, "rgb": 3, "critic": 1, "mask": 1}


@dataclass(frozen=True)
class ModelSpec:
    """The output kind, geometry and input of a network.

    Attributes:
        output: what ``forward`` returns:
            ``"ab"``: ab_n ``(B, 2, h, w)`` in [-1, 1] (ab / 110);
            ``"rgb"``: sRGB ``(B, 3, h, w)`` in [0, 1];
            ``"bins"``: logits ``(B, Q, h, w)`` over the ab bin set ``bins``;
            ``"critic"``: patch logits ``(B, 1, h, w)`` of a GAN discriminator (not a colorizer);
            ``"mask"``: per-pixel logits ``(B, 1, H, W)`` of a damage mask (``tinct.restore``; not a colorizer).
        stride: input sides must be multiples of it.
        native_size: the working size (short side, pixels) the network is meant to see.
        bins: the bin set of a ``"bins"`` model (``"313"``: Zhang's in-gamut bins,
            ``"16x16"``: the uniform grid); None for every other kind.
        in_channels: input channels: 1 (L_n) for colorizers, 3 (L_n, ab_n) for a critic.
        hints: ``forward`` also takes colour hints (``tinct.hints``: a local map and a
            global hint, both optional).
    """

    output: Output
    stride: int
    native_size: int
    bins: BinSet | None = None
    in_channels: int = 1
    hints: bool = False

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if (self.output == "bins") != (self.bins is not None):
            raise ValueError(f"bins is given exactly when output is 'bins' (got output={self.output!r}, bins={self.bins!r})")
        if self.bins is not None and self.bins not in BIN_SETS:
            raise ValueError(f"bins must be one of {', '.join(BIN_SETS)}, got {self.bins!r}")
        for field in ("stride", "native_size", "in_channels"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")

    @property
    def is_bins(self) -> bool:
        """A distribution over ab bins (decoded with the annealed mean)."""
        return self.output == "bins"

    @property
    def is_colorizer(self) -> bool:
        """Its output can be turned into ab (every kind but ``"critic"`` and ``"mask"``)."""
        return self.output not in ("critic", "mask")

    @property
    def out_channels(self) -> int:
        """Channels of the output tensor."""
        return _BIN_CHANNELS[self.bins] if self.bins else _CHANNELS[self.output]

    @property
    def tag(self) -> str:
        """The one-word form ``"ab"``, ``"rgb"``, ``"bins313"``, ``"bins16x16"``, ``"critic"``:
        what exported ONNX files record and what reports and the web API show."""
        return f"bins{self.bins}" if self.bins else self.output

    @classmethod
    def from_tag(cls, tag: str, stride: int, native_size: int, in_channels: int = 1) -> "ModelSpec":
        """Inverse of :attr:`tag`: ``ModelSpec.from_tag("bins313", 32, 256).bins == "313"``."""
        if tag.startswith("bins"):
            return cls("bins", stride, native_size, bins=tag[len("bins"):], in_channels=in_channels)
        return cls(tag, stride, native_size, in_channels=in_channels)  # type: ignore[arg-type]

    def to_meta(self) -> dict[str, Any]:
        """The keys an exported ONNX file records (``output`` is the :attr:`tag`)."""
        return {"output": self.tag, "stride": self.stride, "native_size": self.native_size}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "ModelSpec":
        """Read :meth:`to_meta`'s keys back. Files exported before ``native_size`` was
        recorded give their working ``size`` instead (the same number unless a checkpoint
        changed it)."""
        try:
            return cls.from_tag(str(meta["output"]), int(meta["stride"]), int(meta.get("native_size", meta["size"])))
        except KeyError as e:
            raise ValueError(f"model description lacks {e.args[0]!r} (not exported by tinct?)") from None
