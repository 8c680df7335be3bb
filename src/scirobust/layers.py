"""Feature-level attacks: perturb the output of a named submodule instead of the input.

`FeatureAttackModel(model, "layer")` is an ``nn.Module`` whose *input is the feature tensor*
(the output of ``model.layer``) and whose output is the model's output with that layer's output
replaced by the given features. Every attack, random control and `scirobust.audit` therefore
runs on features unchanged, through the same shared loop and the same `Budget` as on inputs::

    wrapped = FeatureAttackModel(model, "features", example_input=x[:1])
    feats = wrapped.features(x)                       # clean layer outputs, detached
    results = audit(wrapped, feats, y, task="classification", epsilons=[0.1],
                    attacks=["random_sign", "fgsm"])
    # or in one call: feature_audit(model, "features", x, y, epsilons=[0.1], ...)

How it works: a forward hook on the named layer returns the given features; the hook exists
only during one forward pass and is removed in a ``finally`` block. The part of the model
before the layer runs on a placeholder input (zeros of the example input's shape and dtype), so
the wrapper is exact when the layer is a *cut* of the network: everything downstream depends on
the input only through that layer (a feature extractor followed by a classifier, an embedding
layer followed by the rest). The constructor checks this on ``example_input`` (the wrapped
model must reproduce ``model(example_input)`` from the captured features) and raises a
`ConfigError` naming the layer otherwise, e.g. when a skip connection bypasses it. The caller's
input tensor is never modified; only the named layer's output is perturbed.

Works for embedding layers too: the placeholder has the dtype of the example input (integer
token ids), and the features are the float embedding vectors.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from scirobust.audit import audit
from scirobust.errors import ConfigError
from scirobust.results import Results
from scirobust.sweep import Sweep

__all__ = ["FeatureAttackModel", "feature_audit", "get_layer", "layer_output", "split_at"]


def get_layer(model: nn.Module, layer_name: str) -> nn.Module:
    """The submodule called ``layer_name`` (dotted path as in ``model.named_modules()``)."""
    modules = dict(model.named_modules())
    if not layer_name or layer_name not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
        raise ConfigError(
            f"The model has no submodule {layer_name!r}. Submodules (model.named_modules()): "
            f"{shown or '(none)'}."
        )
    return modules[layer_name]


def layer_output(
    model: nn.Module, layer_name: str, x: Tensor, *, batch_size: int = 1024,
    side_inputs: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Clean outputs of ``model.<layer_name>`` for inputs ``x`` (no gradient, eval mode).

    ``side_inputs`` are per-sample keyword inputs (``(N, ...)`` each, e.g. an attention mask)
    batched with ``x`` and passed as ``model(x, **side)``. The hook is removed afterwards and
    the model's train/eval mode restored.
    """
    side = dict(side_inputs or {})
    layer = get_layer(model, layer_name)
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise ConfigError(
                f"Layer {layer_name!r} returns a {type(output).__name__}, not a tensor; attack "
                "a layer whose output is one tensor."
            )
        captured.append(output.detach())

    modes = [(m, m.training) for m in model.modules()]
    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                model(x[rows], **{k: v[rows].to(x.device) for k, v in side.items()})
    finally:
        handle.remove()
        for module, training in modes:
            module.training = training
    if not captured:
        raise ConfigError(f"Layer {layer_name!r} was not called in the model's forward pass.")
    return torch.cat(captured)


class FeatureAttackModel(nn.Module):
    """``model`` seen as a function of the output of its submodule ``layer_name``.

    Args:
        model: the network (its parameters are shared, not copied).
        layer_name: dotted name of the submodule whose output is attacked.
        example_input: a few clean inputs (batch, ...): fixes the placeholder's shape and
            dtype, and is used to check that the layer is a cut of the network.
        example_side_inputs: the side inputs of ``example_input`` (e.g. its attention mask),
            when the model takes any: keyword tensors passed with every forward pass.
        check: run the cut check (default True).
        atol: tolerance of the cut check (relative to the output scale).

    Side inputs: ``wrapped(features, attention_mask=m)`` runs ``model(placeholder,
    attention_mask=m)`` with the layer's output replaced, so a transformer's layer is a cut
    *given* its mask; `scirobust.audit` passes them batch by batch (``side_inputs=``).
    """

    def __init__(
        self,
        model: nn.Module,
        layer_name: str,
        example_input: Tensor,
        *,
        example_side_inputs: Mapping[str, Tensor] | None = None,
        check: bool = True,
        atol: float = 1e-5,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ConfigError("FeatureAttackModel needs a torch.nn.Module (it hooks a submodule).")
        self.model = model
        self.layer_name = layer_name
        self._layer = get_layer(model, layer_name)
        self._input_shape = tuple(example_input.shape[1:])
        self._input_dtype = example_input.dtype
        if check:
            side = {k: v[:8] for k, v in (example_side_inputs or {}).items()}
            self._check_cut(example_input[:8], atol, side)

    def features(self, x: Tensor, *, batch_size: int = 1024,
                 side_inputs: Mapping[str, Tensor] | None = None) -> Tensor:
        """Clean features (the layer's outputs) for inputs ``x``; detached."""
        return layer_output(self.model, self.layer_name, x, batch_size=batch_size,
                            side_inputs=side_inputs)

    def forward(self, features: Tensor, **side_inputs: Tensor) -> Tensor:
        """Model output with the layer's output replaced by ``features`` (batch, ...);
        ``side_inputs`` go to the model as keyword arguments."""
        placeholder = torch.zeros(
            (features.shape[0], *self._input_shape), dtype=self._input_dtype,
            device=features.device,
        )
        used: list[bool] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
            if isinstance(output, Tensor) and output.shape != features.shape:
                raise ConfigError(
                    f"Features of shape {tuple(features.shape)} given for layer "
                    f"{self.layer_name!r}, whose output has shape {tuple(output.shape)}."
                )
            used.append(True)
            return features

        handle = self._layer.register_forward_hook(hook)
        try:
            out = self.model(placeholder, **side_inputs)
        finally:
            handle.remove()
        if len(used) != 1:
            raise ConfigError(
                f"Layer {self.layer_name!r} ran {len(used)} times in one forward pass; a "
                "feature attack needs a layer that is called exactly once."
            )
        return out

    def _check_cut(self, x: Tensor, atol: float, side: dict[str, Tensor]) -> None:
        modes = [(m, m.training) for m in self.model.modules()]
        try:
            self.model.eval()
            with torch.no_grad():
                direct = self.model(x, **side)
                via = self.forward(self.features(x, side_inputs=side), **side)
        finally:
            for module, training in modes:
                module.training = training
        if not isinstance(direct, Tensor):
            raise ConfigError("The model must return one tensor.")
        scale = float(direct.abs().max()) if direct.numel() else 1.0
        if not torch.allclose(direct, via, atol=atol * max(scale, 1.0), rtol=1e-4):
            raise ConfigError(
                f"Layer {self.layer_name!r} is not a cut of the network: the model's output "
                "also depends on the input through another path (e.g. a skip connection around "
                "the layer, or a mask or other side input derived from the input, as in a "
                "transformer), so it is not a function of this layer's output alone. Pass "
                "such side inputs explicitly (example_side_inputs= here, side_inputs= to "
                "feature_audit), attack a layer that every path from input to output goes "
                "through (e.g. the whole feature extractor), or use split_at on a Sequential "
                "model."
            )

    def extra_repr(self) -> str:
        return f"layer={self.layer_name!r}"


def split_at(model: nn.Sequential, layer_name: str) -> tuple[nn.Sequential, nn.Sequential]:
    """Split a top-level ``nn.Sequential`` after the child ``layer_name``: ``(head, tail)``.

    ``tail(head(x)) == model(x)``; the parts share the model's parameters. For other models
    use `FeatureAttackModel`, which needs no structural split.
    """
    if not isinstance(model, nn.Sequential):
        raise ConfigError(
            "split_at needs an nn.Sequential; for other models use "
            "FeatureAttackModel(model, layer_name, example_input)."
        )
    names = [name for name, _ in model.named_children()]
    if layer_name not in names:
        raise ConfigError(f"The Sequential has no child {layer_name!r}; children: {names}.")
    cut = names.index(layer_name) + 1
    children = list(model.named_children())
    return (nn.Sequential(OrderedDict(children[:cut])),
            nn.Sequential(OrderedDict(children[cut:])))


def feature_audit(
    model: nn.Module,
    layer_name: str,
    inputs: Tensor,
    targets: Tensor | None = None,
    sweep: Sweep | None = None,
    **audit_kwargs: Any,
) -> Results:
    """`scirobust.audit` on the outputs of ``model.<layer_name>`` instead of the inputs.

    Computes the clean features once, wraps the model in `FeatureAttackModel` and calls the
    ordinary audit with the same `Sweep` (or sweep keywords) and audit arguments (with
    ``side_inputs``, e.g. ``{"attention_mask": mask}``, for the clean features, the cut check
    and every attacked forward pass). The budget
    is in feature units; give no ``bounds`` unless the features have a physical domain. The
    metadata gains ``feature_layer`` and the features' shape and standard deviation (the scale
    against which eps should be read).
    """
    batch_size = sweep.batch_size if sweep is not None else audit_kwargs.get("batch_size", 1024)
    side = audit_kwargs.get("side_inputs")
    wrapped = FeatureAttackModel(model, layer_name, inputs[:8], example_side_inputs=side)
    feats = wrapped.features(inputs, batch_size=batch_size, side_inputs=side)
    results = audit(wrapped, feats, targets, sweep, **audit_kwargs)
    results.metadata["feature_layer"] = {
        "name": layer_name,
        "shape": list(feats.shape[1:]),
        "std": float(feats.double().std()),
        "mean_abs": float(feats.double().abs().mean()),
    }
    return results

