"""Second backbone (docs/design.md §5, for GPU users): a transformers vision tower as the cells' pixel path.

Any local SigLIP / CLIP checkpoint works: a vision-only model (``SiglipVisionModel``) or a
dual-encoder whose ``vision_config`` is taken apart. Its patch states are pooled onto the G×G
grid, then the same text-layer, position, transformer and projection head as the default backbone
runs on top, so scores, losses, export and the index code are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from components.config import ModelParams
from components.model.cell_encoder import CellEncoder

VISION_DIR = "vision_model"


def load_vision_tower(path: str | Path) -> nn.Module:
    """A ``*VisionModel`` from a local folder: vision-only checkpoints directly, dual encoders split."""
    from transformers import AutoConfig, AutoModel

    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model.vision_model={str(path)!r} is not a folder")
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    if getattr(config, "vision_config", None) is None:
        return model
    # A dual encoder (CLIP/SigLIP): transformers 5 holds its vision half as a *VisionModel already.
    tower = getattr(model, "vision_model", None)
    if tower is None or not hasattr(tower, "config") or not hasattr(tower.config, "patch_size"):
        raise ValueError(
            f"{path}: {type(model).__name__} has no vision tower this adapter understands"
        )
    return tower


def vision_tower_from_config(folder: Path) -> nn.Module:
    """An empty tower shaped like an export's saved vision config (weights come from safetensors)."""
    from transformers import AutoConfig, AutoModel

    return AutoModel.from_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))


class HFVisionCellEncoder(CellEncoder):
    def __init__(self, p: ModelParams, text_width: int, tower: nn.Module):
        super().__init__(p, text_width)
        del self.patch_embed  # the tower replaces the default patch embedding
        self.tower = tower
        vc = tower.config
        self.input_size = int(vc.image_size)
        self.patches_per_side = self.input_size // int(vc.patch_size)
        self.visual_proj = nn.Linear(vc.hidden_size, p.hidden)

    def visual(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(self.visual_proj.weight.dtype) / 255.0
        if x.shape[-1] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        # SigLIP's processors normalise with mean = std = 0.5; CLIP's differ a little, and the head adapts.
        states = self.tower(pixel_values=(x - 0.5) / 0.5).last_hidden_state
        s = self.patches_per_side
        patches = states[:, -s * s :]  # CLIP prepends a class token; SigLIP has none
        grid = patches.transpose(1, 2).reshape(len(x), -1, s, s)
        pooled = F.adaptive_avg_pool2d(grid, self.grid)  # patch grid -> G×G cells
        return self.visual_proj(pooled.flatten(2).transpose(1, 2))
