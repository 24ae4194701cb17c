"""A fine-tuned adapter merged into a full GGUF model with llama.cpp's own tools (built by the
set-up script beside ``llama-server``): ``llama-export-lora`` writes f16 (the seed's "float16"
export), ``llama-quantize`` turns that into q8_0."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ..engine import find_binary
from ..errors import LLMJudgeError

MERGE_TYPES = ("f16", "q8_0")


def _tool(name: str) -> Path:
    path = find_binary(name)
    if path is None:
        raise LLMJudgeError(f"{name} not found: run scripts/setup.sh (it builds llama.cpp's tools) to merge adapters")
    return path


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [x for x in (done.stderr + done.stdout).splitlines() if x.strip()]
        raise LLMJudgeError(f"{what} failed: {(lines or ['no output'])[-1][:200]}")


def merge(base: Path, adapter: Path, out: Path, kind: str = "f16") -> Path:
    """``base`` with ``adapter`` applied, written to ``out`` as ``kind`` (f16 or q8_0)."""
    if kind not in MERGE_TYPES:
        raise LLMJudgeError(f"cannot merge to {kind!r}: use one of {', '.join(MERGE_TYPES)}")
    part = out.with_name(out.name + ".part")  # written whole, then moved: no half file after an interruption
    f16 = part if kind == "f16" else out.with_name(out.stem + "-f16.part.gguf")
    try:
        _run([str(_tool("llama-export-lora")), "-m", str(base), "--lora", str(adapter), "-o", str(f16)],
             f"merging {adapter.name} into {base.name}")
        if kind == "q8_0":
            _run([str(_tool("llama-quantize")), str(f16), str(part), "q8_0"], f"quantising {out.name}")
        part.replace(out)
    finally:
        f16.unlink(missing_ok=True)
    return out
