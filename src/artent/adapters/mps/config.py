"""Configuration of the MPS adapter (docs/training.md, ``--method mps``).

The adapter is LoRA with its down-projection ``A`` (``r x n``) replaced by a two-core matrix product
state over the input dimension ``n = n_1 * n_2``::

    A_MPS[k, i_1 * n_2 + i_2] = sum_c G_1[k, i_1, c] * G_2[c, i_2]
    Delta W = scale * B @ A_MPS,    scale = alpha / r   (alpha / sqrt(r) with use_rslora)

with ``G_1`` of shape ``(r, n_1, chi)``, ``G_2`` of shape ``(chi, n_2)`` and ``B`` of shape
``(m, r)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from peft.config import PeftConfig

#: The peft method name; peft's registry wants it lower case, its ``PeftType`` member upper case.
MPS_PEFT_METHOD_NAME = "mps"
#: Prefix of every adapter parameter name (``mps_B``, ``mps_G1``, ``mps_G2``).
MPS_PARAMETER_PREFIX = "mps_"


def balanced_factorization(n: int) -> tuple[int, int]:
    """The most balanced factorisation ``n = n_1 * n_2`` with ``n_1 <= n_2``.

    Args:
        n: Positive integer, the input dimension of a linear layer.

    Returns:
        ``(n_1, n_2)`` with ``n_1`` the largest divisor of ``n`` not above ``sqrt(n)``;
        ``(1, n)`` when ``n`` is prime.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"balanced_factorization: n must be a positive integer, got {n!r}")
    for n_1 in range(math.isqrt(n), 0, -1):
        if n % n_1 == 0:
            return n_1, n // n_1
    raise AssertionError("unreachable: 1 divides every n")  # pragma: no cover


def resolve_input_split(
    in_features: int, n_1: int | None, module_name: str = "module"
) -> tuple[int, int]:
    """The ``(n_1, n_2)`` split of one layer's input dimension.

    Args:
        in_features: The layer's input dimension ``n``.
        n_1: The requested first factor, or ``None`` for :func:`balanced_factorization`.
        module_name: Name used in the error message.

    Raises:
        ValueError: When ``n_1`` does not divide ``in_features``.
    """
    if n_1 is None:
        return balanced_factorization(in_features)
    if in_features % n_1 != 0:
        raise ValueError(
            f"MPSConfig.n_1={n_1} does not divide in_features={in_features} of module "
            f"'{module_name}'; pick an n_1 that divides every targeted module's in_features, "
            f"or n_1=None"
        )
    return n_1, in_features // n_1


def mps_num_parameters(m: int, n: int, r: int, chi: int, n_1: int | None = None) -> int:
    """Trainable parameter count of one MPS-adapted ``m x n`` layer: ``m r + r n_1 chi + chi n_2``.

    Args:
        m: Output dimension (rows of ``Delta W``).
        n: Input dimension (columns of ``Delta W``).
        r: Rank (columns of ``B``).
        chi: Bond dimension between the two input cores.
        n_1: First input factor, ``None`` for the balanced one.
    """
    n_1, n_2 = resolve_input_split(n, n_1)
    return m * r + r * n_1 * chi + chi * n_2


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"MPSConfig.{name} must be an integer >= 1, got {value!r}")


@dataclass
class MPSConfig(PeftConfig):
    """Options of the MPS adapter; validated in ``__post_init__``.

    Args:
        r: Rank of the update (columns of ``B``, rows of ``A_MPS``), ``>= 1``.
        chi: Bond dimension between the ``n_1`` and ``n_2`` input cores, ``>= 1``. It bounds the
            entanglement across that cut: ``S <= ln chi``.
        alpha: Scale numerator: ``Delta W = (alpha / r) B A_MPS`` (``alpha / sqrt(r)`` with
            ``use_rslora``).
        dropout: Dropout probability on the adapter's input (the base path sees the clean input).
        target_modules: Names (exact or ``.``-suffix) of the ``nn.Linear`` modules to adapt, a regex
            string, or ``"all-linear"``. Every listed name must match a module of the model.
        exclude_modules: Names or regex of modules never to adapt.
        n_1: First input factor for every targeted module (must divide each ``in_features``);
            ``None`` picks the most balanced ``n_1 <= n_2`` per module.
        use_rslora: Scale by ``alpha / sqrt(r)`` instead of ``alpha / r``.
        init_weights: ``True``: ``B = 0`` so ``Delta W = 0`` at step 0 (cores random, ``A_MPS``
            entries with LoRA's variance ``1 / (3 n)``). ``False``: ``B`` random too (for tests;
            ``Delta W != 0``).
        modules_to_save: Extra modules trained and saved in full (peft semantics).
    """

    r: int = field(default=8, metadata={"help": "Rank of the update, >= 1."})
    chi: int = field(
        default=8, metadata={"help": "Bond dimension between the two input cores, >= 1."}
    )
    alpha: float = field(default=8.0, metadata={"help": "Delta W = (alpha / r) * B @ A_MPS."})
    dropout: float = field(
        default=0.0, metadata={"help": "Dropout on the adapter input, in [0, 1)."}
    )
    target_modules: list[str] | str | None = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "Module names (exact or suffix), a regex, or 'all-linear'."},
    )
    exclude_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Module names or regex to leave alone."}
    )
    n_1: int | None = field(
        default=None, metadata={"help": "First input factor; None = most balanced n_1 <= n_2."}
    )
    use_rslora: bool = field(default=False, metadata={"help": "Scale alpha / sqrt(r)."})
    init_weights: bool = field(
        default=True, metadata={"help": "True: B = 0 (Delta W = 0 at init)."}
    )
    modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Extra modules trained and saved in full."}
    )
    bias: Literal["none"] = field(default="none", metadata={"help": "Only 'none' is supported."})

    def __post_init__(self) -> None:
        super().__post_init__()
        from peft.utils import PeftType

        # The enum member is added when artent.adapters.mps is imported
        # (model.register_mps_with_peft).
        self.peft_type = PeftType(MPS_PEFT_METHOD_NAME.upper())
        _check_positive_int("r", self.r)
        _check_positive_int("chi", self.chi)
        if self.n_1 is not None:
            _check_positive_int("n_1", self.n_1)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise ValueError(f"MPSConfig.alpha must be a real number, got {self.alpha!r}")
        if not math.isfinite(self.alpha):
            raise ValueError(f"MPSConfig.alpha must be finite, got {self.alpha!r}")
        self.alpha = float(self.alpha)
        if not (0.0 <= float(self.dropout) < 1.0):
            raise ValueError(f"MPSConfig.dropout must lie in [0, 1), got {self.dropout!r}")
        if not isinstance(self.use_rslora, bool):
            raise ValueError(f"MPSConfig.use_rslora must be a bool, got {self.use_rslora!r}")
        if not isinstance(self.init_weights, bool):
            raise ValueError(f"MPSConfig.init_weights must be a bool, got {self.init_weights!r}")
        if self.bias != "none":
            raise ValueError(f"MPSConfig.bias must be 'none', got {self.bias!r}")
        if isinstance(self.target_modules, (list, tuple, set)):
            if not self.target_modules:
                raise ValueError("MPSConfig.target_modules is empty; name at least one module")
            # peft's convention (as in LoraConfig): a set of names, written back as a list on save.
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, (list, tuple)):
            self.exclude_modules = set(self.exclude_modules)

    @property
    def scale(self) -> float:
        """The factor in front of ``B @ A_MPS``: ``alpha / r`` or ``alpha / sqrt(r)`` (rsLoRA)."""
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def input_split(self, in_features: int, module_name: str = "module") -> tuple[int, int]:
        """The ``(n_1, n_2)`` split this config gives a layer with ``in_features`` inputs."""
        return resolve_input_split(in_features, self.n_1, module_name)

    def num_parameters(self, out_features: int, in_features: int) -> int:
        """Trainable parameters of one adapted ``out_features x in_features`` layer.

        ``m r + r n_1 chi + chi n_2`` with ``m = out_features``, ``n = in_features = n_1 n_2``.
        """
        return mps_num_parameters(out_features, in_features, self.r, self.chi, self.n_1)
