"""Writes the tiny random-weight test checkpoints and their transformers reference outputs.

Usage: /work/venv/bin/python tools/make_fixtures.py [--out test/fixtures/models]

Each fixture is a real Hugging Face folder written by transformers' own save_pretrained
(config.json, model.safetensors or shards + index, generation_config.json), plus a tiny byte-level
BPE tokenizer (tokenizer.json, tokenizer_config.json) and reference.json holding logits and KV
computed by transformers itself in float32. Half-precision fixtures are reloaded with
dtype=float32 for the reference, so the reference sees exactly the upcast weights the engine sees.

Everything is seeded: rerunning produces the same weights, tokenizers and references on the same
torch/transformers versions.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SEQUENCE_LENGTH = 48
DECODE_PREFIX = 40  # prefill this many tokens, then decode the rest one at a time
ATTENTION_WINDOW = 8  # attention probabilities kept for the last queries of the full prefill

HALF_DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16}

WORDS = (
    "const let function return import export from class interface type extends implements async await "
    "if else for while switch case break continue try catch finally throw new this null undefined true "
    "false def self lambda yield with as pass raise None True False print len range dict list set "
    "buffer cache token layer value key query attention window index offset length size count limit "
    "RETRY_LIMIT MAX_TOKENS TIMEOUT_MS config options result error status request response stream"
).split()
PUNCT = ["(", ")", "{", "}", "[", "]", ";", ":", ",", ".", "=", "=>", "+", "-", "*", "/", "<", ">", "==", "!=", "\n", "\n    "]


def training_text(seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(3, 12)):
            parts.append(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(PUNCT))
            if rng.random() < 0.15:
                parts.append(str(rng.randint(0, 5000)))
        lines.append(" ".join(parts))
    return lines


def build_tokenizer(vocab_size: int, specials: list[str], bos: str | None, seed: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(seed), trainer=trainer)
    if tokenizer.get_vocab_size() != vocab_size:
        raise SystemExit(f"tokenizer vocab {tokenizer.get_vocab_size()} != {vocab_size}: add training text")
    if bos is not None:
        bos_id = tokenizer.token_to_id(bos)
        tokenizer.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]),
        ])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Realistic, asymmetric scales so that transposes, missing biases or wrong norms show in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=gen))
            elif name.endswith(".bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=gen))
            elif "embed_tokens" in name:
                param.copy_(0.1 * torch.randn(param.shape, generator=gen))
            else:
                param.copy_(0.06 * torch.randn(param.shape, generator=gen))


def llama_config() -> LlamaConfig:
    return LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=1,
        # theta 20000 with head_dim 16 puts one frequency below the high-frequency wavelength (8),
        # one inside the smoothed band (8..32) and the rest above 32, so all three llama3 branches run.
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 20000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    )


def qwen2_config() -> Qwen2Config:
    return Qwen2Config(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=[2, 0],  # <|im_end|>, <|endoftext|> as in Qwen2 chat models
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        use_sliding_window=False,
    )


def fmt(values: torch.Tensor) -> list[float]:
    # 9 significant digits round-trip every float32 exactly.
    return [float(f"{v:.9g}") for v in values.to(torch.float32).reshape(-1).tolist()]


def reference(model_dir: Path, ids: list[int]) -> dict:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    return reference_from_model(model, ids)


def reference_from_model(model: torch.nn.Module, ids: list[int]) -> dict:
    model.eval()
    # Attention probabilities are only returned by the eager implementation.
    model.config._attn_implementation = "eager"
    config = model.config
    with torch.no_grad():
        full_out = model(torch.tensor([ids]), use_cache=False, output_attentions=True)
        full = full_out.logits[0]
        attention = []
        for layer_probs in full_out.attentions:
            probs = layer_probs[0]  # [heads, q, k]
            attention.append({
                "window": fmt(probs[:, -ATTENTION_WINDOW:, :]),
                "keySums": fmt(probs.sum(dim=1)),
            })
        prefix = model(torch.tensor([ids[:DECODE_PREFIX]]), use_cache=True)
        cache = prefix.past_key_values
        layers = []
        for layer in range(config.num_hidden_layers):
            # transformers caches [batch, kv_heads, seq, head_dim]; the engine is token-major [seq, kv_heads, head_dim].
            keys = cache.layers[layer].keys[0].transpose(0, 1).contiguous()
            values = cache.layers[layer].values[0].transpose(0, 1).contiguous()
            layers.append({"keys": fmt(keys), "values": fmt(values)})
        prefix_last = prefix.logits[0, -1]
        steps = []
        for pos in range(DECODE_PREFIX, len(ids)):
            out = model(torch.tensor([[ids[pos]]]), past_key_values=cache, use_cache=True, position_ids=torch.tensor([[pos]]))
            cache = out.past_key_values
            steps.append({"token": ids[pos], "position": pos, "logits": fmt(out.logits[0, -1])})
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return {
        "format": "kvlens-reference-v1",
        "generator": {"transformers": transformers.__version__, "torch": torch.__version__, "computeDtype": "float32"},
        "vocabSize": config.vocab_size,
        "numLayers": config.num_hidden_layers,
        "numHeads": config.num_attention_heads,
        "numKvHeads": config.num_key_value_heads,
        "headDim": head_dim,
        "ids": ids,
        "prefill": {
            "positions": list(range(len(ids))),
            "logits": fmt(full),
            "attentionWindow": ATTENTION_WINDOW,
            "attention": attention,
        },
        "decode": {
            "prefixLength": DECODE_PREFIX,
            "prefixLastLogits": fmt(prefix_last),
            "prefixCache": layers,
            "steps": steps,
        },
    }


def write_reference(model: torch.nn.Module, target: Path, ids: list[int], stored_dtype: str) -> None:
    """reference.json for a fixture folder whose weights transformers loaded itself (the GGUF fixtures)."""
    ref = reference_from_model(model, ids)
    ref["fixture"] = target.name
    ref["storedDtype"] = stored_dtype
    (target / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    print(sorted(p.name for p in target.iterdir()), sum(p.stat().st_size for p in target.iterdir()) // 1024, "KiB")


def write_fixture(out: Path, name: str, model: torch.nn.Module, tokenizer: Tokenizer, tokenizer_config: dict,
                  ids: list[int], dtype: torch.dtype | None, max_shard_size: str | None) -> None:
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    # Module.to converts in place: convert a copy so every fixture rounds from the same fp32 weights.
    to_save = model if dtype is None else copy.deepcopy(model).to(dtype)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    to_save.save_pretrained(target, safe_serialization=True, **kwargs)
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    ref = reference(target, ids)
    ref["fixture"] = name
    ref["storedDtype"] = {None: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype]
    (target / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    files = sorted(p.name for p in target.iterdir())
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"{name}: {files} ({size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "test" / "fixtures" / "models"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    llama_tok = build_tokenizer(320, ["<|begin_of_text|>", "<|end_of_text|>"], bos="<|begin_of_text|>", seed=11)
    llama_tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "add_bos_token": True,
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    qwen_tok = build_tokenizer(384, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, seed=12)
    qwen_tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
        "chat_template": (
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        ),
    }

    ids_rng = random.Random(1234)
    llama_ids = [0] + [ids_rng.randrange(2, 320) for _ in range(SEQUENCE_LENGTH - 1)]
    qwen_ids = [ids_rng.randrange(3, 384) for _ in range(SEQUENCE_LENGTH)]

    llama = LlamaForCausalLM(llama_config())
    randomize(llama, seed=101)
    qwen = Qwen2ForCausalLM(qwen2_config())
    randomize(qwen, seed=202)

    for suffix, dtype in [("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16)]:
        write_fixture(out, f"llama-gqa-tied-rope3-{suffix}", llama, llama_tok, llama_tok_config, llama_ids, dtype, None)
        write_fixture(out, f"qwen2-bias-untied-{suffix}", qwen, qwen_tok, qwen_tok_config, qwen_ids, dtype, None)
    write_fixture(out, "llama-gqa-tied-rope3-f32-sharded", llama, llama_tok, llama_tok_config, llama_ids, None, "100KB")


if __name__ == "__main__":
    main()
