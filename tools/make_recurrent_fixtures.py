"""Writes the tiny random-weight recurrent checkpoints (Mamba, Mamba-2, RWKV-4, RecurrentGemma) and their transformers reference outputs.

Usage: /work/venv/bin/python tools/make_recurrent_fixtures.py [--out test/fixtures/models]

Each fixture is a Hugging Face folder written by transformers' own save_pretrained (config.json,
model.safetensors, generation_config.json), a tiny byte-level BPE tokenizer, and
recurrent-reference.json holding what transformers computes in float32: the logits of every position
of one sequence, the logits of a prefix, the logits of each following token fed one at a time on the
prefix's cached state, and 24 greedy tokens from its cached `generate`. (The file is not named
reference.json: that name marks the attention fixtures, whose references hold KV caches.)

Everything is seeded: rerunning produces the same weights, tokenizers and references on the same
torch/transformers versions.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    Mamba2Config,
    Mamba2ForCausalLM,
    MambaConfig,
    MambaForCausalLM,
    RecurrentGemmaConfig,
    RecurrentGemmaForCausalLM,
    RwkvConfig,
    RwkvForCausalLM,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import build_tokenizer, fmt  # noqa: E402

SEQUENCE_LENGTH = 48
DECODE_PREFIX = 40
GREEDY_TOKENS = 24
VOCAB = 320


def mamba_config() -> MambaConfig:
    return MambaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        state_size=8,
        num_hidden_layers=2,
        expand=2,
        conv_kernel=4,
        time_step_rank=4,
        use_bias=False,
        use_conv_bias=True,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        use_mambapy=False,
    )


def mamba2_config() -> Mamba2Config:
    return Mamba2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        expand=2,
        num_heads=8,
        head_dim=8,
        n_groups=2,
        state_size=8,
        num_hidden_layers=2,
        conv_kernel=4,
        use_bias=False,
        use_conv_bias=True,
        layer_norm_epsilon=1e-5,
        # 48 tokens in chunks of 16: transformers' prefill runs its chunked scan across three chunks.
        chunk_size=16,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def rwkv_config() -> RwkvConfig:
    return RwkvConfig(
        vocab_size=VOCAB,
        context_length=256,
        hidden_size=32,
        num_hidden_layers=3,
        intermediate_size=80,
        layer_norm_epsilon=1e-5,
        # Halving the residual stream after every second block exercises transformers' inference-time rescaling.
        rescale_every=2,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )


def recurrent_gemma_config() -> RecurrentGemmaConfig:
    return RecurrentGemmaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=96,
        num_hidden_layers=3,
        # recurrent, attention, recurrent: both temporal blocks, and a recurrent block after the attention one.
        block_types=["recurrent", "attention"],
        num_attention_heads=4,
        num_key_value_heads=2,
        # A window shorter than the 48-token sequence, so the local attention's ring buffer wraps.
        attention_window_size=8,
        conv1d_width=4,
        # A cap near the logits' own range, so soft-capping visibly bends them.
        logits_soft_cap=3.0,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def randomize_recurrent_gemma(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith("recurrent_param"):
                # softplus(-3.5) ~ 0.03: recurrence weights a around 0.9, a memory of tens of tokens.
                param.copy_(-3.5 + 0.5 * noise)
            elif "norm" in name:
                # RecurrentGemma's RMSNorm scales by (1 + weight).
                param.copy_(0.2 * noise)
            elif name.endswith("bias"):
                param.copy_(0.1 * noise)
            elif "embed_tokens" in name:
                param.copy_(0.1 * noise)
            elif "conv_1d" in name:
                param.copy_(0.3 * noise)
            else:
                param.copy_(0.2 * noise)


def randomize_mamba(model: torch.nn.Module, seed: int) -> None:
    """Asymmetric weights, with A and D near the values training keeps them at, so the state neither explodes nor dies."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith("A_log"):
                state = param.shape[-1]
                param.copy_(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).expand_as(param) + 0.3 * noise)
            elif name.endswith("dt_bias"):
                param.copy_(-3.0 + 0.5 * noise)
            elif name.endswith(".D"):
                param.copy_(1.0 + 0.3 * noise)
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith("dt_proj.bias"):
                # softplus^-1 of time steps around 0.05.
                param.copy_(-3.0 + 0.5 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.1 * noise)
            elif "embeddings" in name:
                param.copy_(0.1 * noise)
            elif "conv1d" in name:
                param.copy_(0.3 * noise)
            else:
                param.copy_(0.25 * noise)


def randomize_rwkv(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=gen)
            if "time_mix" in name:
                param.copy_(torch.rand(param.shape, generator=gen))
            elif name.endswith("time_decay"):
                param.copy_(0.8 * noise)
            elif name.endswith("time_first"):
                param.copy_(0.5 * noise)
            elif ("ln" in name.split(".")[-2]) and name.endswith(".weight"):
                param.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.1 * noise)
            elif "embeddings" in name:
                param.copy_(0.5 * noise)
            else:
                param.copy_(0.15 * noise)


def step_model(model: torch.nn.Module, kind: str, token: int, cache, position: int):
    ids = torch.tensor([[token]])
    if kind == "recurrent_gemma":
        out = model(ids, past_key_values=cache, use_cache=True, position_ids=torch.tensor([[position]]))
        return out.logits[0, -1], cache
    if kind == "rwkv":
        out = model(ids, state=cache, use_cache=True)
        return out.logits[0, -1], out.state
    out = model(ids, cache_params=cache, use_cache=True, cache_position=torch.tensor([position]))
    return out.logits[0, -1], out.cache_params


def reference(model_dir: Path, kind: str, ids: list[int]) -> dict:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        full = model(torch.tensor([ids]), use_cache=False).logits[0]
        if kind == "recurrent_gemma":
            # Its forward returns no cache: it keeps the recurrent state in its modules and takes the local
            # attention's KV cache from the caller.
            cache = DynamicCache(config=model.config)
            prefix_out = model(torch.tensor([ids[:DECODE_PREFIX]]), use_cache=True, past_key_values=cache,
                               position_ids=torch.arange(DECODE_PREFIX)[None])
        else:
            prefix_out = model(torch.tensor([ids[:DECODE_PREFIX]]), use_cache=True)
            cache = prefix_out.state if kind == "rwkv" else prefix_out.cache_params
        steps = []
        for pos in range(DECODE_PREFIX, len(ids)):
            logits, cache = step_model(model, kind, ids[pos], cache, pos)
            steps.append({"token": ids[pos], "position": pos, "logits": fmt(logits)})
        generated = model.generate(
            torch.tensor([ids[:DECODE_PREFIX]]),
            max_new_tokens=GREEDY_TOKENS,
            min_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            use_cache=True,
            pad_token_id=getattr(model.config, "pad_token_id", None) or 0,
        )[0, DECODE_PREFIX:].tolist()
    return {
        "format": "kvlens-recurrent-reference-v1",
        "architecture": model.config.architectures[0],
        "generator": {"transformers": transformers.__version__, "torch": torch.__version__, "computeDtype": "float32"},
        "vocabSize": model.config.vocab_size,
        "numLayers": model.config.num_hidden_layers,
        "ids": ids,
        "logits": fmt(full),
        "decode": {"prefixLength": DECODE_PREFIX, "prefixLastLogits": fmt(prefix_out.logits[0, -1]), "steps": steps},
        "greedy": {"promptLength": DECODE_PREFIX, "tokens": generated},
    }


def write_fixture(out: Path, name: str, kind: str, model: torch.nn.Module, tokenizer, tokenizer_config: dict, ids: list[int]) -> None:
    target = out / name
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save(str(target / "tokenizer.json"))
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    ref = reference(target, kind, ids)
    ref["fixture"] = name
    (target / "recurrent-reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
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

    # GPT-NeoX-style: one <|endoftext|> that is BOS, EOS and padding, and no BOS added to prompts.
    tokenizer = build_tokenizer(VOCAB, ["<|endoftext|>", "<|padding|>"], bos=None, seed=13)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|padding|>",
        "add_bos_token": False,
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    ids_rng = random.Random(4321)
    ids = [ids_rng.randrange(2, VOCAB) for _ in range(SEQUENCE_LENGTH)]

    mamba = MambaForCausalLM(mamba_config())
    randomize_mamba(mamba, seed=303)
    write_fixture(out, "mamba-tied-f32", "mamba", mamba, tokenizer, tokenizer_config, ids)

    mamba2 = Mamba2ForCausalLM(mamba2_config())
    randomize_mamba(mamba2, seed=505)
    write_fixture(out, "mamba2-groups-untied-f32", "mamba2", mamba2, tokenizer, tokenizer_config, ids)

    gemma = RecurrentGemmaForCausalLM(recurrent_gemma_config())
    randomize_recurrent_gemma(gemma, seed=606)
    write_fixture(out, "recurrentgemma-window8-f32", "recurrent_gemma", gemma, tokenizer, tokenizer_config, ids)

    rwkv = RwkvForCausalLM(rwkv_config())
    randomize_rwkv(rwkv, seed=404)
    write_fixture(out, "rwkv4-rescaled-f32", "rwkv", rwkv, tokenizer, tokenizer_config, ids)


if __name__ == "__main__":
    main()
