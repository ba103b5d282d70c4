"""The MPS adapter layer: an ``nn.Linear`` plus ``scale * B @ A_MPS`` (see docs/training.md).

Shapes (``m = out_features``, ``n = in_features = n_1 * n_2``)::

    B    (m, r)            zero at init, so Delta W = 0 at step 0
    G_1  (r, n_1, chi)     A_MPS[k, i_1 * n_2 + i_2] = sum_c G_1[k, i_1, c] G_2[c, i_2]
    G_2  (chi, n_2)

The forward pass never forms ``A_MPS`` or ``Delta W``: per token it costs
``n chi + r n_1 chi + m r`` multiply-adds against LoRA's ``r n + m r``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn
from torch.nn import functional as F

from artent.adapters.mps.config import MPSConfig


class MPSLayer(BaseTunerLayer):
    """peft tuner-layer mixin holding, per adapter name, the cores ``B``, ``G_1``, ``G_2``."""

    # Names peft walks to find, save, move and (un)freeze the adapter weights.
    adapter_layer_names: tuple[str, ...] = ("mps_B", "mps_G1", "mps_G2")
    other_param_names: tuple[str, ...] = ("r", "chi", "n_1", "n_2", "scaling", "mps_dropout")

    def __init__(self, base_layer: nn.Module, module_name: str = "module", **kwargs: Any) -> None:
        self.base_layer = base_layer
        self.module_name = module_name
        self.r: dict[str, int] = {}
        self.chi: dict[str, int] = {}
        self.n_1: dict[str, int] = {}
        self.n_2: dict[str, int] = {}
        self.scaling: dict[str, float] = {}
        self.mps_dropout = nn.ModuleDict({})
        self.mps_B = nn.ParameterDict({})
        self.mps_G1 = nn.ParameterDict({})
        self.mps_G2 = nn.ParameterDict({})
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self.kwargs = kwargs

        base = self.get_base_layer()
        if not isinstance(base, nn.Linear):
            raise ValueError(
                f"MPS adapter: module '{module_name}' is a {type(base).__name__}; only "
                f"torch.nn.Linear modules can be targeted"
            )
        self.in_features, self.out_features = base.in_features, base.out_features

    def update_layer(self, adapter_name: str, config: MPSConfig) -> None:
        """Create (or replace) the adapter ``adapter_name`` with the sizes and init of ``config``.

        Raises:
            ValueError: When ``config.n_1`` does not divide this module's ``in_features``.
        """
        n_1, n_2 = config.input_split(self.in_features, self.module_name)
        if n_1 == 1 and config.n_1 is None and self.in_features > 1:
            warnings.warn(
                f"MPS adapter: in_features={self.in_features} of module '{self.module_name}' is "
                f"prime, so n_1=1 and the MPS reduces to a rank-min(r, chi) factorisation of A",
                stacklevel=2,
            )
        r, chi = config.r, config.chi
        self.r[adapter_name] = r
        self.chi[adapter_name] = chi
        self.n_1[adapter_name] = n_1
        self.n_2[adapter_name] = n_2
        self.scaling[adapter_name] = config.scale
        self.mps_B[adapter_name] = nn.Parameter(torch.empty(self.out_features, r))
        self.mps_G1[adapter_name] = nn.Parameter(torch.empty(r, n_1, chi))
        self.mps_G2[adapter_name] = nn.Parameter(torch.empty(chi, n_2))
        dropout = nn.Dropout(p=config.dropout) if config.dropout > 0.0 else nn.Identity()
        self.mps_dropout.update(nn.ModuleDict({adapter_name: dropout}))
        self.reset_mps_parameters(adapter_name, config.init_weights)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_mps_parameters(self, adapter_name: str, init_weights: bool = True) -> None:
        """Draw the cores: ``G_1, G_2 ~ N(0, sigma^2)`` with ``sigma = (3 n chi)^(-1/4)``.

        Then each ``A_MPS`` entry (a sum of ``chi`` products) has variance
        ``chi sigma^4 = 1 / (3 n)``, the variance of LoRA's kaiming-uniform ``A``; both cores get
        the same entry scale so that one learning rate suits both. ``B = 0`` (``init_weights=True``)
        or LoRA's kaiming-uniform (``False``).
        """
        g1, g2, b = self.mps_G1[adapter_name], self.mps_G2[adapter_name], self.mps_B[adapter_name]
        sigma = (3.0 * self.in_features * self.chi[adapter_name]) ** -0.25
        with torch.no_grad():
            nn.init.normal_(g1, mean=0.0, std=sigma)
            nn.init.normal_(g2, mean=0.0, std=sigma)
            if init_weights:
                nn.init.zeros_(b)
            else:
                nn.init.kaiming_uniform_(b, a=math.sqrt(5))

    # ----- the factored maps -------------------------------------------------------------------

    def _resolve_adapter(self, adapter: str | None) -> str:
        if adapter is None:
            if len(self.active_adapters) != 1:
                raise ValueError(
                    f"MPS adapter: module '{self.module_name}' has active adapters "
                    f"{self.active_adapters}; name one"
                )
            adapter = self.active_adapters[0]
        if adapter not in self.mps_B:
            raise ValueError(
                f"MPS adapter: module '{self.module_name}' has no adapter '{adapter}' "
                f"(has {sorted(self.mps_B.keys())})"
            )
        return adapter

    def mps_project(self, x: torch.Tensor, adapter: str) -> torch.Tensor:
        """``x @ A_MPS^T`` without forming ``A_MPS``: ``(.., n) -> (.., r)``."""
        g1, g2 = self.mps_G1[adapter], self.mps_G2[adapter]
        r, n_1, chi = g1.shape
        lead = x.shape[:-1]
        # (.., n) -> (.., n_1, n_2) row-major: column i_1 * n_2 + i_2 -> (i_1, i_2).
        x_split = x.reshape(*lead, n_1, g2.shape[1])
        # Contract n_2 with G_2: (.., n_1, chi), cost n chi per token.
        t = F.linear(x_split, g2)
        # Contract (n_1, chi) with G_1: (.., r), cost r n_1 chi per token.
        return F.linear(t.reshape(*lead, n_1 * chi), g1.reshape(r, n_1 * chi))

    def a_mps(self, adapter: str | None = None) -> torch.Tensor:
        """The dense down-projection ``A_MPS`` (``r x n``), row-major over ``(i_1, i_2)``."""
        adapter = self._resolve_adapter(adapter)
        g1, g2 = self.mps_G1[adapter], self.mps_G2[adapter]
        return torch.einsum("kic,cj->kij", g1, g2).reshape(g1.shape[0], -1)

    def get_delta_weight(self, adapter: str) -> torch.Tensor:
        """peft's hook: dense ``Delta W = scale * B @ A_MPS`` (``m x n``) of ``adapter``."""
        adapter = self._resolve_adapter(adapter)
        return self.scaling[adapter] * (self.mps_B[adapter] @ self.a_mps(adapter))

    def delta_weight(self, adapter: str | None = None) -> torch.Tensor:
        """Dense ``Delta W`` (``m x n``, the base weight's layout), for merging or dense analysis.

        Args:
            adapter: Adapter name; ``None`` for the single active one.
        """
        return self.get_delta_weight(self._resolve_adapter(adapter))

    def factors(self, adapter: str | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(B, A_MPS, scale)`` with ``Delta W = scale * B @ A_MPS``.

        ``B`` is ``m x r`` and ``A_MPS`` is ``r x n``: the analysis can use this low-rank form
        without forming the ``m x n`` matrix.
        """
        adapter = self._resolve_adapter(adapter)
        return self.mps_B[adapter], self.a_mps(adapter), self.scaling[adapter]

    def cores(
        self, adapter: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """``(B, G_1, G_2, scale)``: cores of shapes ``(m, r)``, ``(r, n_1, chi)``, ``(chi, n_2)``.

        Read the entanglement profile off these without forming ``A_MPS`` or ``Delta W``.
        """
        adapter = self._resolve_adapter(adapter)
        return (
            self.mps_B[adapter],
            self.mps_G1[adapter],
            self.mps_G2[adapter],
            self.scaling[adapter],
        )

    def num_parameters(self, adapter: str | None = None) -> int:
        """Adapter parameters of ``adapter`` in this layer: ``m r + r n_1 chi + chi n_2``."""
        adapter = self._resolve_adapter(adapter)
        return sum(getattr(self, name)[adapter].numel() for name in self.adapter_layer_names)


class MPSLinear(nn.Module, MPSLayer):
    """``nn.Linear`` plus MPS adapters: ``y = base(x) + sum_a scale_a B_a A_MPS,a dropout(x)``."""

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: MPSConfig,
        module_name: str = "module",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        MPSLayer.__init__(self, base_layer, module_name=module_name, **kwargs)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Add ``Delta W`` of the given (default: active) adapters into the base weight.

        Args:
            safe_merge: Check the merged weight for non-finite values before writing it.
            adapter_names: Adapters to merge; ``None`` for the active ones.
        """
        adapter_names = check_adapters_to_merge(self, adapter_names)
        base = self.get_base_layer()
        for adapter in adapter_names:
            if adapter not in self.mps_B:
                continue
            delta = self.get_delta_weight(adapter).detach().to(base.weight.dtype)
            with torch.no_grad():
                if safe_merge:
                    merged = base.weight.data + delta
                    if not torch.isfinite(merged).all():
                        raise ValueError(
                            f"MPS adapter '{adapter}' of module '{self.module_name}': "
                            f"merged weight has non-finite values"
                        )
                    base.weight.data = merged
                else:
                    base.weight.data += delta
            self.merged_adapters.append(adapter)

    def unmerge(self) -> None:
        """Subtract every merged adapter's ``Delta W`` from the base weight again."""
        if not self.merged:
            warnings.warn("MPS adapter: already unmerged, nothing to do", stacklevel=2)
            return
        base = self.get_base_layer()
        while self.merged_adapters:
            adapter = self.merged_adapters.pop()
            if adapter in self.mps_B:
                with torch.no_grad():
                    base.weight.data -= (
                        self.get_delta_weight(adapter).detach().to(base.weight.dtype)
                    )

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        for adapter in self.active_adapters:
            if adapter not in self.mps_B:
                continue
            b = self.mps_B[adapter]
            x_adapter = self._cast_input_dtype(self.mps_dropout[adapter](x), b.dtype)
            update = F.linear(self.mps_project(x_adapter, adapter), b) * self.scaling[adapter]
            result = result + update.to(result.dtype)
        return result

    def __repr__(self) -> str:
        return "mps." + super().__repr__()
