"""Writes the random-weight fixtures of the attention families beyond Llama/Qwen2 and transformers' outputs on them.

Usage: /work/venv/bin/python tools/make_family_fixtures.py [--out test/fixtures/models]

Each fixture is a Hugging Face folder written by transformers' own save_pretrained in the dtype the family
ships in (bf16), with a tiny byte-level BPE tokenizer (tools/make_fixtures.py builds it) and reference.json in
the same kvlens-reference-v1 layout as the other fixtures, plus `greedy`: 24 tokens of transformers' cached
greedy `generate` after the 40-token prefix. The reference reloads the folder in float32 with eager attention.

  qwen3-qknorm-headdim24-bf16     Qwen3ForCausalLM: q/k RMSNorm per head before RoPE, head_dim 24 != 64 / 4
  qwen3-window12-top-layer-bf16   Qwen3 with use_sliding_window: layer 0 full, layer 1 a 12-token window
  mistral-window12-bf16           MistralForCausalLM: every layer a 12-token sliding window
  gemma2-softcap-window12-bf16    Gemma2ForCausalLM: (1 + weight) RMSNorm before and after attention and MLP,
                                  embeddings times sqrt(hidden), GeGLU (tanh GELU), query_pre_attn_scalar 24 != head_dim
                                  16, attention logits capped at 5 and final logits at 10 (low, so tanh bends them),
                                  layers sliding (12) / full / sliding
  gemma3-local-global-bf16        Gemma3ForCausalLM (gemma3_text): Gemma 2's layout plus (1 + weight) q/k norms, no
                                  soft-caps, a 2:1 local/global pattern (windows of 12), RoPE base 10000 on local and
                                  1e6 with linear scaling (factor 8) on global layers

The 48-token sequences are four windows long, so the window cuts in prefill and in every decode step.
transformers' own decode cache keeps only the last window of a sliding layer; the reference stores the prefix
keys from a cache that keeps every token (the engine's layout), after checking that decoding on it gives the
same logits as decoding on transformers' sliding cache.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, DynamicCache, Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen3Config, Qwen3ForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import ATTENTION_WINDOW, DECODE_PREFIX, SEQUENCE_LENGTH, build_tokenizer, fmt, randomize  # noqa: E402

GREEDY_TOKENS = 24
WINDOW = 12


def qwen3_config(**overrides) -> Qwen3Config:
    settings = dict(
        vocab_size=384,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=24,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=[2, 0],
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    )
    settings.update(overrides)
    return Qwen3Config(**settings)


def mistral_config() -> MistralConfig:
    return MistralConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        sliding_window=WINDOW,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )


def gemma2_config() -> Gemma2Config:
    return Gemma2Config(
        vocab_size=320,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        sliding_window=WINDOW,
        attn_logit_softcapping=5.0,
        final_logit_softcapping=10.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )


def gemma3_config() -> Gemma3TextConfig:
    return Gemma3TextConfig(
        vocab_size=320,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=24,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        sliding_window=WINDOW,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0},
        },
    )


# Phi3ForCausalLM: fused qkv_proj and gate_up_proj, RoPE on the first 3/4 of each head (as Phi-4-mini), every layer
# windowed. main() writes no fixture from it until the engine loads Phi-3: test/unit/loader.test.ts lists every fixture.
def phi3_config() -> Phi3Config:
    return Phi3Config(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=None,
        sliding_window=WINDOW,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
    )


def reference(model_dir: Path, ids: list[int]) -> dict:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    config = model.config
    with torch.no_grad():
        full_out = model(torch.tensor([ids]), use_cache=False, output_attentions=True)
        full = full_out.logits[0]
        attention = [{"window": fmt(probs[0, :, -ATTENTION_WINDOW:, :]), "keySums": fmt(probs[0].sum(dim=1))} for probs in full_out.attentions]
        prefix_ids = torch.tensor([ids[:DECODE_PREFIX]])
        # A cache that keeps every token (no config: no sliding layers), and transformers' own for comparison.
        cache = DynamicCache()
        prefix = model(prefix_ids, use_cache=True, past_key_values=cache)
        own_cache = DynamicCache(config=config)
        model(prefix_ids, use_cache=True, past_key_values=own_cache)
        layers = []
        for layer in range(config.num_hidden_layers):
            keys = cache.layers[layer].keys[0].transpose(0, 1).contiguous()
            values = cache.layers[layer].values[0].transpose(0, 1).contiguous()
            assert keys.shape[0] == DECODE_PREFIX, keys.shape
            layers.append({"keys": fmt(keys), "values": fmt(values)})
        steps = []
        for pos in range(DECODE_PREFIX, len(ids)):
            step = dict(use_cache=True, position_ids=torch.tensor([[pos]]), cache_position=torch.tensor([pos]))
            out = model(torch.tensor([[ids[pos]]]), past_key_values=cache, **step)
            own = model(torch.tensor([[ids[pos]]]), past_key_values=own_cache, **step)
            torch.testing.assert_close(out.logits, own.logits, rtol=0, atol=1e-5)
            torch.testing.assert_close(out.logits[0, -1], full[pos], rtol=0, atol=1e-4)
            steps.append({"token": ids[pos], "position": pos, "logits": fmt(out.logits[0, -1])})
        # An explicit all-ones mask: generate would otherwise mask every prompt token equal to the pad id (the BOS here).
        generated = model.generate(
            prefix_ids,
            attention_mask=torch.ones_like(prefix_ids),
            max_new_tokens=GREEDY_TOKENS,
            min_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )[0, DECODE_PREFIX:].tolist()
    windows = [WINDOW if getattr(config, "sliding_window", None) and t == "sliding_attention" else None
               for t in getattr(config, "layer_types", None) or ["sliding_attention"] * config.num_hidden_layers]
    if config.model_type in ("mistral", "phi3"):
        windows = [config.sliding_window] * config.num_hidden_layers
    return {
        "format": "kvlens-reference-v1",
        "generator": {"transformers": transformers.__version__, "torch": torch.__version__, "computeDtype": "float32"},
        "architecture": config.architectures[0],
        "layerWindows": windows,
        "vocabSize": config.vocab_size,
        "numLayers": config.num_hidden_layers,
        "numHeads": config.num_attention_heads,
        "numKvHeads": config.num_key_value_heads,
        "headDim": getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        "ids": ids,
        "prefill": {"positions": list(range(len(ids))), "logits": fmt(full), "attentionWindow": ATTENTION_WINDOW, "attention": attention},
        "decode": {
            "prefixLength": DECODE_PREFIX,
            "prefixLastLogits": fmt(prefix.logits[0, -1]),
            "prefixCache": layers,
            "steps": steps,
        },
        "greedy": {"promptLength": DECODE_PREFIX, "tokens": generated},
    }


def write_fixture(out: Path, name: str, model: torch.nn.Module, tokenizer, tokenizer_config: dict, ids: list[int]) -> None:
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(target, safe_serialization=True)
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    ref = reference(target, ids)
    ref["fixture"] = name
    ref["storedDtype"] = "bfloat16"
    (target / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"{name}: {sorted(p.name for p in target.iterdir())} ({size / 1024:.0f} KiB), windows {ref['layerWindows']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "test" / "fixtures" / "models"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    qwen_tok = build_tokenizer(384, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], bos=None, seed=12)
    qwen_tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    mistral_tok = build_tokenizer(320, ["<s>", "</s>"], bos="<s>", seed=13)
    mistral_tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "add_bos_token": True,
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }

    ids_rng = random.Random(4321)
    qwen_ids = [ids_rng.randrange(3, 384) for _ in range(SEQUENCE_LENGTH)]
    mistral_ids = [0] + [ids_rng.randrange(2, 320) for _ in range(SEQUENCE_LENGTH - 1)]

    qwen3 = Qwen3ForCausalLM(qwen3_config())
    randomize(qwen3, seed=303)
    write_fixture(out, "qwen3-qknorm-headdim24-bf16", qwen3, qwen_tok, qwen_tok_config, qwen_ids)

    windowed = Qwen3ForCausalLM(qwen3_config(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, tie_word_embeddings=True))
    randomize(windowed, seed=304)
    write_fixture(out, "qwen3-window12-top-layer-bf16", windowed, qwen_tok, qwen_tok_config, qwen_ids)

    mistral = MistralForCausalLM(mistral_config())
    randomize(mistral, seed=404)
    write_fixture(out, "mistral-window12-bf16", mistral, mistral_tok, mistral_tok_config, mistral_ids)

    gemma2 = Gemma2ForCausalLM(gemma2_config())
    randomize(gemma2, seed=505)
    with torch.no_grad():
        # Gemma scales by (1 + weight): norms around 0 keep the effective scale near 1, as trained Gemmas have it.
        for name, param in gemma2.named_parameters():
            if name.endswith("norm.weight"):
                param.sub_(1.0)
    write_fixture(out, "gemma2-softcap-window12-bf16", gemma2, mistral_tok, mistral_tok_config, mistral_ids)

    gemma3 = Gemma3ForCausalLM(gemma3_config())
    randomize(gemma3, seed=606)
    with torch.no_grad():
        for name, param in gemma3.named_parameters():
            if name.endswith("norm.weight"):
                param.sub_(1.0)
        # Without Gemma 2's caps the tied head's logits would spread too little for the int4 drift bound of the
        # shared quantization test: wider embedding rows give them the spread trained models have.
        gemma3.model.embed_tokens.weight.mul_(3.0)
    write_fixture(out, "gemma3-local-global-bf16", gemma3, mistral_tok, mistral_tok_config, mistral_ids)


if __name__ == "__main__":
    main()
