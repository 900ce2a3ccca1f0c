"""Interchange and steering in the latent space of an autoencoder (learned, or a published SAE)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import Tensor, nn

import vene

from ._common import RecordsInterchangeDim, interchange_mask, need_dim, need_source

__all__ = ["AutoencoderIntervention", "JumpReLUAutoencoderIntervention"]

_EMBED_HINT = (
    "IntervenableModel passes the site's width; when building the intervention yourself pass "
    "embed_dim=<width>."
)
_LATENT_HINT = "set latent_dim (or low_rank_dimension) on the representation."


def _latent_dim(kwargs: Mapping[str, Any], who: str) -> int:
    value = kwargs.get("latent_dim")
    if value is None:
        value = kwargs.get("low_rank_dimension")
    return need_dim(value, "latent_dim", who, _LATENT_HINT)


def _select(mask: Tensor | None, source: Tensor, base: Tensor) -> Tensor:
    """The source's latents where ``mask`` is set (everywhere when None), else the base's."""
    if mask is None:
        return source
    return torch.where(mask.bool(), source, base)


class _Autoencoder(nn.Module):
    """pyvene's autoencoder layer: ``encoder = Linear + ReLU`` applied to ``x - b_dec``."""

    encoder: nn.Sequential
    decoder: nn.Sequential

    def __init__(self, input_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, latent_dim, bias=True), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(latent_dim, input_dim, bias=True))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x - self._dec.bias)

    @property
    def _dec(self) -> nn.Linear:
        return cast(nn.Linear, self.decoder[0])  # __init__ builds the decoder of one Linear

    def decode(self, latent: Tensor) -> Tensor:
        return self.decoder(latent)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class AutoencoderIntervention(
    RecordsInterchangeDim, vene.TrainableIntervention, vene.LocalistRepresentationIntervention
):
    """Interchange in the latent space of a learned autoencoder.

    ``latent = relu(W_e (x − b_d) + b_e)``, ``x̂ = W_d latent + b_d`` (``autoencoder.encoder`` /
    ``autoencoder.decoder``, named as in pyvene so its trained weights load). The latents named
    by ``subspaces`` (per example; else the first ``interchange_dim``; default all) are taken
    from the source, and the mixed latent is decoded. With ``keep_error=True`` the base's
    reconstruction error ``x − x̂`` is added back, so that an interchange of nothing returns the
    base exactly as it came. Returns ``InterventionOutput(output, latent)`` with the mixed latent.
    """

    def __init__(self, keep_error: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = type(self).__name__
        n = need_dim(self.embed_dim, "embed_dim", who, _EMBED_HINT)
        self.latent_dim = _latent_dim(kwargs, who)
        self.keep_error = bool(keep_error)
        self.autoencoder = _Autoencoder(n, self.latent_dim)

    def encode(self, x: Tensor) -> Tensor:
        return self.autoencoder.encode(x.to(self.autoencoder._dec.bias.dtype))

    def decode(self, latent: Tensor) -> Tensor:
        return self.autoencoder.decode(latent)

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> vene.InterventionOutput:
        source = need_source(source, type(self).__name__)
        x = base.to(self.autoencoder._dec.bias.dtype)
        zb = self.encode(x)
        zs = self.encode(source)
        z = _select(interchange_mask(subspaces, self.interchange_dim, self.latent_dim, zb), zs, zb)
        out = self.decode(z)
        if self.keep_error:
            out = out + (x - self.decode(zb))
        return vene.InterventionOutput(out.to(base.dtype), z)


class JumpReLUAutoencoderIntervention(
    RecordsInterchangeDim, vene.TrainableIntervention, vene.LocalistRepresentationIntervention
):
    """Interchange or steer in the latent space of a JumpReLU sparse autoencoder (Gemma Scope).

    Parameters are named as in the published Gemma Scope weights: ``W_enc`` (``[embed_dim,
    latent_dim]``), ``b_enc``, ``threshold`` (``[latent_dim]``), ``W_dec`` (``[latent_dim,
    embed_dim]``), ``b_dec``::

        pre = x @ W_enc + b_enc
        latent = relu(pre) * (pre > threshold)
        x̂ = latent @ W_dec + b_dec

    With a source, the latents named by ``subspaces`` (else the first ``interchange_dim``;
    default all) come from the source. Without one (no ``sources`` given), the base's latents
    are kept. Either way ``latent_steering`` (a buffer, zero until :meth:`set_latent_steering`)
    is then added to the latent, and the latent is decoded. With ``keep_error=True`` the base's
    reconstruction error ``x − x̂`` is added back (steering then adds exactly
    ``steering @ W_dec``). Returns ``InterventionOutput(output, latent)``.

    Load published weights with :meth:`from_safetensors` or :meth:`load_sae_weights`. The
    threshold gets no gradient through the step function; train it with a straight-through
    estimator of your own if you need to.
    """

    SAE_WEIGHTS = ("W_enc", "b_enc", "threshold", "W_dec", "b_dec")
    latent_steering: Tensor

    def __init__(self, keep_error: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        who = type(self).__name__
        n = need_dim(self.embed_dim, "embed_dim", who, _EMBED_HINT)
        latent = _latent_dim(kwargs, who)
        self.latent_dim = latent
        self.keep_error = bool(keep_error)
        # Tied, unit-norm decoder directions: the usual starting point for training an SAE.
        w_dec = torch.randn(latent, n)
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_enc = nn.Parameter(w_dec.T.clone())
        self.b_enc = nn.Parameter(torch.zeros(latent))
        self.threshold = nn.Parameter(torch.zeros(latent))
        self.W_dec = nn.Parameter(w_dec)
        self.b_dec = nn.Parameter(torch.zeros(n))
        self.register_buffer("latent_steering", torch.zeros(latent))

    # -- published weights ---------------------------------------------------------------------
    @classmethod
    def from_safetensors(cls, path: str | os.PathLike[str], **kwargs: Any) -> JumpReLUAutoencoderIntervention:
        """Build the intervention from a safetensors file of SAE weights (``W_enc`` etc.).

        ``path`` is the file, or a directory holding one ``*.safetensors`` file. ``embed_dim`` and
        ``latent_dim`` are read from ``W_enc``; other keyword arguments (``keep_error``...) go to
        the constructor.
        """
        from safetensors.torch import load_file

        state = load_file(_safetensors_file(os.fspath(path)))
        if "W_enc" not in state or state["W_enc"].dim() != 2:
            raise vene.ArtifactError(
                f"{path} holds no 2-D W_enc; a JumpReLU SAE file has W_enc [d_model, d_sae], "
                f"b_enc, threshold, W_dec, b_dec. It holds: {', '.join(sorted(state)) or 'nothing'}."
            )
        d, latent = state["W_enc"].shape
        iv = cls(embed_dim=int(d), latent_dim=int(latent), **kwargs)
        iv.load_sae_weights(state)
        return iv

    @torch.no_grad()
    def load_sae_weights(self, state: Mapping[str, Tensor]) -> None:
        """Copy published SAE weights (``W_enc``, ``b_enc``, ``threshold`` or ``log_threshold``,
        ``W_dec``, ``b_dec``) into this intervention, in place. Other entries are ignored."""
        state = dict(state)
        if "threshold" not in state and "log_threshold" in state:
            state["threshold"] = torch.exp(torch.as_tensor(state["log_threshold"]))
        missing = [k for k in self.SAE_WEIGHTS if k not in state]
        if missing:
            raise vene.ArtifactError(
                f"the SAE weights lack {', '.join(missing)}; a JumpReLU SAE has "
                f"{', '.join(self.SAE_WEIGHTS)} (Gemma Scope's names). Got: {', '.join(sorted(state))}."
            )
        for name in self.SAE_WEIGHTS:
            mine: Tensor = getattr(self, name)
            value = torch.as_tensor(state[name])
            if value.shape != mine.shape:
                raise vene.ArtifactError(
                    f"SAE weight {name} has shape {tuple(value.shape)}, but this intervention "
                    f"(embed_dim={self.embed_dim}, latent_dim={self.latent_dim}) expects "
                    f"{tuple(mine.shape)}; W_enc is [d_model, d_sae] and W_dec [d_sae, d_model]."
                )
            mine.copy_(value)

    @torch.no_grad()
    def set_latent_steering(self, values: Mapping[int, float] | Tensor | None) -> None:
        """Set what is added to the latent: ``{feature: amount}``, a ``[latent_dim]`` tensor, or
        None to stop steering."""
        self.latent_steering.zero_()
        if values is None:
            return
        if isinstance(values, Mapping):
            for feature, amount in values.items():
                if not -self.latent_dim <= int(feature) < self.latent_dim:
                    raise vene.SubspaceError(
                        f"SAE feature {feature} does not exist; features run 0..{self.latent_dim - 1}."
                    )
                self.latent_steering[int(feature)] = float(amount)
            return
        values = torch.as_tensor(values)
        if values.shape != self.latent_steering.shape:
            raise vene.ConfigError(
                f"latent steering must be a [{self.latent_dim}] tensor or a {{feature: amount}} "
                f"dict, got shape {tuple(values.shape)}."
            )
        self.latent_steering.copy_(values)

    # -- the SAE --------------------------------------------------------------------------------
    def encode(self, input_acts: Tensor) -> Tensor:
        pre = input_acts.to(self.W_enc.dtype) @ self.W_enc + self.b_enc
        return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)

    def decode(self, acts: Tensor) -> Tensor:
        return acts @ self.W_dec + self.b_dec

    def forward(
        self, base: Tensor, source: Tensor | None = None, subspaces: Any = None, **kwargs: Any
    ) -> vene.InterventionOutput:
        x = base.to(self.W_enc.dtype)
        zb = self.encode(x)
        if source is None:
            z = zb
        else:
            zs = self.encode(source)
            z = _select(interchange_mask(subspaces, self.interchange_dim, self.latent_dim, zb), zs, zb)
        z = z + self.latent_steering.to(z.dtype)
        out = self.decode(z)
        if self.keep_error:
            out = out + (x - self.decode(zb))
        return vene.InterventionOutput(out.to(base.dtype), z)


def _safetensors_file(path: str) -> str:
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
        if len(found) == 1:
            return os.path.join(path, found[0])
        raise vene.ArtifactError(
            f"{path} holds {len(found)} .safetensors files ({', '.join(found) or 'none'}); pass "
            "the path of the SAE's weights file."
        )
    raise vene.ArtifactError(f"no SAE weights at {path}: it is neither a file nor a directory.")
