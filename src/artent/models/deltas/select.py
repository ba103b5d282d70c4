"""Which modules (and which blocks of fused projections) ``modules=`` and ``layers=`` choose."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artent.models.checkpoints import parse_module_key
from artent.models.deltas.common import ALL_MODULES
from artent.models.deltas.fused import ALIASES, ROLE_MODULES, canonical_module, is_fused


@dataclass(frozen=True)
class Planned:
    """One update to read: a module, or one q/k/v block of a fused module.

    Attributes:
        name: the module's path in the checkpoint.
        layer: its layer index (``None`` outside the layer stack).
        module: the output module name (canonical ``q_proj`` / ``k_proj`` / ``v_proj`` for the
            query, key and value, whatever the architecture calls them).
        rows: the block's row indices in the fused module's update; ``None``: the whole module.
        role: ``"q"``, ``"k"`` or ``"v"`` for a block (``None`` otherwise).
    """

    name: str
    layer: int | None
    module: str
    rows: Any = None
    role: str | None = None

    @property
    def label(self) -> str:
        """The update's name: the module path, with ``[q]`` etc. for a block of a fused one."""
        return self.name if self.role is None else f"{self.name}[{self.role}]"


def check_selection(modules, layers) -> tuple[list[str], set[int] | None]:
    """The requested module names (aliases made canonical, in order) and layer set."""
    modules = (modules,) if isinstance(modules, str) else tuple(modules)
    if not modules or not all(isinstance(m, str) and m for m in modules):
        raise ValueError(f"modules=: give one or more module names, got {modules!r}")
    wanted = list(dict.fromkeys(canonical_module(m) for m in modules))
    if layers is None:
        return wanted, None
    layers = [layers] if isinstance(layers, int) else list(layers)
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
        raise ValueError(f"layers=: give layer indices >= 0, got {layers!r}")
    return wanted, set(layers)


def select(
    names: Iterable[str],
    modules,
    layers,
    where: Path | str,
    layout_of: Callable[[str, str], Any],
) -> list[Planned]:
    """The chosen updates, by layer, then in the order of ``modules``.

    Args:
        names: module paths in the checkpoint (without ``.weight``).
        modules: requested names; ``q_proj``/``query``/``q`` (likewise k, v) mean the query
            (key, value) projection whatever it is called, including its block of a fused
            projection; ``["all"]`` means every one of
            :data:`~artent.models.deltas.common.ALL_MODULES` present; any other name means the
            modules of that name.
        layers: layer indices to keep (``None``: all).
        where: the checkpoint or adapter, for messages.
        layout_of: ``layout_of(name, module)`` -> the
            :class:`~artent.models.deltas.fused.FusedLayout` of a fused module (raising where the
            layout is unknown); called only when a query/key/value projection is requested.

    Raises:
        ValueError: a requested module that matches nothing, a layer that is not there, a fused
            module whose layout is unknown.
    """
    wanted, layers = check_selection(modules, layers)
    parsed = [(name, *parse_module_key(name + ".weight")) for name in names]  # type: ignore[misc]
    if wanted == ["all"]:
        present = {module for _, _, module in parsed}
        fused = any(is_fused(m) for m in present)
        wanted = [
            m
            for m in ALL_MODULES
            if m in present
            or (
                m in ROLE_MODULES.values()
                and (fused or any(ALIASES.get(p) == ALIASES[m] for p in present))
            )
        ]
        if not wanted:
            raise ValueError(f"modules=all: none of {', '.join(ALL_MODULES)} in {where}")
    roles = [ALIASES[m] for m in wanted if m in ROLE_MODULES.values()]
    found: list[Planned] = []
    for name, layer, module in parsed:
        if module in wanted:
            found.append(Planned(name, layer, module))
        elif ALIASES.get(module) in roles:  # query, q, ...: the same module as q_proj
            found.append(Planned(name, layer, ROLE_MODULES[ALIASES[module]], None, None))
        if roles and is_fused(module):
            layout = layout_of(name, module)
            for role in roles:
                found.append(Planned(name, layer, ROLE_MODULES[role], layout.blocks[role], role))
    for module in wanted:
        if not any(p.module == module for p in found):
            also = ""
            if module in ROLE_MODULES.values():
                names_of = [a for a, r in ALIASES.items() if r == ALIASES[module] and a != module]
                also = f" (nor {', '.join(names_of)}, nor a fused q/k/v projection)"
            raise ValueError(f"modules=: no module named '{module}' in {where}{also}")
    if layers is not None:
        present = {p.layer for p in found}
        missing = sorted(layers - present)
        if missing:
            have = sorted(i for i in present if i is not None)
            raise ValueError(
                f"layers=: no layer {missing[0]} with modules {wanted} in {where} "
                f"(layers present: {have})"
            )
        found = [p for p in found if p.layer in layers]
    return sorted(
        found, key=lambda p: (p.layer is None, p.layer or 0, wanted.index(p.module), p.name)
    )
