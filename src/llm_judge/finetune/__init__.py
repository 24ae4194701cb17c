"""Fine-tuning: the seed's LoRA recipe end to end (an optional extra: ``pip install llm-judge[finetune]``).

``recipe`` (the hyperparameters by name), ``data`` (conversations, assistant-only labels), ``train``
(the loop, checkpoints, resume), ``fast`` (Unsloth on a CUDA GPU where installed, else PEFT),
``gguf_lora`` (adapters llama.cpp loads), ``merge`` (full f16/q8_0 models with llama.cpp's tools),
``plot`` (the loss curve) and ``study`` (checkpoints compared with a judge). Nothing outside this
package imports torch.
"""

from .recipe import RECIPES, Recipe, get_recipe, with_overrides

__all__ = ["RECIPES", "Recipe", "get_recipe", "with_overrides"]
