"""Generator adapter (GPU users): region crops -> a transformers image-text-to-text model -> answer.

The model and its processor load from a local directory only (``local_files_only``, safetensors);
nothing is downloaded. It answers with the same ``Answered`` object as the span reader, so the
evaluation and the engine can swap one answerer for the other.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from components.reader.answerer import Answered
from components.reader.contexts import Context
from components.reader.model import ReaderAnswer


def crop(image: Image.Image, box) -> Image.Image:
    """The normalised ``box`` of a page image (at least 1x1 pixel)."""
    w, h = image.size
    x0, y0, x1, y1 = (round(v) for v in (box[0] * w, box[1] * h, box[2] * w, box[3] * h))
    return image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))


class GeneratorAnswerer:
    def __init__(self, model_dir: Path, max_new_tokens: int = 16, device: str = "cpu"):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(
                f"generator model folder {model_dir} does not exist (only local folders load)"
            )
        self.processor = AutoProcessor.from_pretrained(str(model_dir), local_files_only=True)
        self.model = (
            AutoModelForImageTextToText.from_pretrained(
                str(model_dir), local_files_only=True, use_safetensors=True
            )
            .to(device)
            .eval()
        )
        self.max_new_tokens, self.device = max_new_tokens, device

    def _prompt(self, question: str, n_images: int) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [
            {"type": "text", "text": question}
        ]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True
            )
        token = getattr(self.processor, "image_token", "<image>")
        return token * n_images + question

    def answer(self, question: str, contexts: list[Context], crops: list[Image.Image]) -> Answered:
        """``crops``: the contexts' region images, in the same order (see ``crop``)."""
        import torch

        if len(crops) != len(contexts):
            raise ValueError(f"{len(crops)} crops for {len(contexts)} contexts")
        inputs = self.processor(
            images=crops or None, text=self._prompt(question, len(crops)), return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self.processor.decode(new, skip_special_tokens=True).strip()
        return Answered(
            text, None, sum(c.n_visual for c in contexts), ReaderAnswer(text, None, 0.0, 0.0)
        )
