"""artent profile: profiles of tensors in a safetensors file, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from artent import entanglement_profile
from artent.cli import main as cli_main


def test_profile_writes_the_core_profile_of_each_matrix(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(32, 16, generator=g), "bias": torch.randn(16, generator=g)}
    save_file(tensors, str(tmp_path / "m.safetensors"))
    out = tmp_path / "p.parquet"
    assert cli_main(["profile", str(tmp_path / "m.safetensors"), "--out", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert set(frame.tensor) == {"w"}  # only 2-D tensors by default
    want = entanglement_profile(tensors["w"].double().numpy(), method="svd")
    np.testing.assert_allclose(frame.sort_values("bond").entropy, want, atol=1e-9)


def test_profile_errors_are_one_line(tmp_path, capsys):
    save_file({"w": torch.zeros(4, 4)}, str(tmp_path / "m.safetensors"))
    assert cli_main(["profile", str(tmp_path / "m.safetensors"), "-t", "nope"]) == 2
    assert "no tensor named 'nope'" in capsys.readouterr().err
    assert cli_main(["profile", str(tmp_path / "m.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "tensor 'w'" in err and "all zeros" in err and "Traceback" not in err
