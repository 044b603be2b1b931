"""Writes test/fixtures/models/llama-kquant-gguf/: a GGUF file laid out like llama.cpp's Q*_K_M files (k-quant
blocks in every projection, Q6_K output and embedding table, F32 norms), and the reference outputs of
transformers loading that file (it dequantizes with gguf-py and undoes llama.cpp's q/k permutation itself).

gguf-py cannot quantize to k-quants, so the blocks are random bytes with small finite fp16 scales: any such block
is a valid k-quant block, and both kvlens and transformers must read the same weights out of it.

Usage: /work/venv/bin/python tools/make_kquant_gguf_fixture.py   (needs `pip install gguf` in the venv)
Run after tools/make_fixtures.py (it reuses the llama fixture's tokenizer and probe ids).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf.constants import GGML_QUANT_SIZES
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "test" / "fixtures" / "models"
SOURCE = MODELS / "llama-gqa-tied-rope3-f32"
TARGET = MODELS / "llama-kquant-gguf"
Q = gguf.GGMLQuantizationType

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 256, 512, 2, 4, 2, 64
# Offsets of the fp16 scale fields inside each block type's bytes.
HALF_FIELDS = {Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q2_K: [80, 82], Q.Q3_K: [108],
               Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
# Typical scale per type that keeps weights around 0.01-0.03 in magnitude (codes span 0..15/31/63 etc.).
SCALE = {Q.Q4_1: 1.5e-3, Q.Q5_0: 8e-4, Q.Q5_1: 8e-4, Q.Q2_K: 1e-3, Q.Q3_K: 5e-4, Q.Q4_K: 5e-5, Q.Q5_K: 2.5e-5, Q.Q6_K: 2e-5}
# A Q4_K_M-like mix, with the other block types on a few tensors so every reader path runs on a real file.
STORAGE = {
    "token_embd": Q.Q6_K, "output": Q.Q6_K,
    "attn_q": Q.Q4_K, "attn_k": Q.Q4_K, "attn_v": Q.Q6_K, "attn_output": Q.Q5_K,
    "ffn_gate": Q.Q4_K, "ffn_up": Q.Q3_K, "ffn_down": Q.Q2_K,
}
LAYER1_OVERRIDES = {"attn_k": Q.Q4_1, "attn_v": Q.Q5_0, "attn_output": Q.Q5_1}


def load_sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Types with a minimum: (offset of d, offset of the minimum field, minimum / d). Random codes average half their
# range, so a minimum of that size keeps weights centred on zero, as real quantized weights are; uncentred
# random weights make activations that cancel, which amplifies rounding in any implementation.
CENTRED = {Q.Q4_1: (0, 2, -7.5), Q.Q5_1: (0, 2, -15.5), Q.Q2_K: (80, 82, 1.5), Q.Q4_K: (0, 2, 7.5), Q.Q5_K: (0, 2, 15.5)}


def random_blocks(rng: np.random.Generator, qtype: Q, rows: int, cols: int) -> np.ndarray:
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    assert cols % block_elems == 0
    blocks = rows * cols // block_elems
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    d = rng.uniform(0.5, 1.5, size=blocks) * SCALE[qtype]
    fields = [(HALF_FIELDS[qtype][0], d)]
    if qtype in CENTRED:
        _, at_min, ratio = CENTRED[qtype]
        fields.append((at_min, d * ratio))
    for at, value in fields:
        raw[:, at:at + 2] = value.astype(np.float16).view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, cols // block_elems * block_bytes)


def main() -> None:
    rng = np.random.default_rng(20261125)
    source_ref = json.loads((SOURCE / "reference.json").read_text())
    vocab = source_ref["vocabSize"]
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    path = TARGET / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("kvlens k-quant llama fixture")
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)

    def add(name: str, kind: str, rows: int, cols: int, layer: int | None = None) -> None:
        qtype = LAYER1_OVERRIDES.get(kind, STORAGE[kind]) if layer == 1 else STORAGE[kind]
        writer.add_tensor(name, random_blocks(rng, qtype, rows, cols), raw_dtype=qtype)

    add("token_embd.weight", "token_embd", vocab, HIDDEN)
    for layer in range(LAYERS):
        p = f"blk.{layer}."
        writer.add_tensor(p + "attn_norm.weight", rng.uniform(0.8, 1.2, HIDDEN).astype(np.float32))
        writer.add_tensor(p + "ffn_norm.weight", rng.uniform(0.8, 1.2, HIDDEN).astype(np.float32))
        add(p + "attn_q.weight", "attn_q", HEADS * HEAD_DIM, HIDDEN, layer)
        add(p + "attn_k.weight", "attn_k", KV_HEADS * HEAD_DIM, HIDDEN, layer)
        add(p + "attn_v.weight", "attn_v", KV_HEADS * HEAD_DIM, HIDDEN, layer)
        add(p + "attn_output.weight", "attn_output", HIDDEN, HEADS * HEAD_DIM, layer)
        add(p + "ffn_gate.weight", "ffn_gate", FFN, HIDDEN, layer)
        add(p + "ffn_up.weight", "ffn_up", FFN, HIDDEN, layer)
        add(p + "ffn_down.weight", "ffn_down", HIDDEN, FFN, layer)
    writer.add_tensor("output_norm.weight", rng.uniform(0.8, 1.2, HIDDEN).astype(np.float32))
    add("output.weight", "output", vocab, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SOURCE / name, TARGET / name)

    model = AutoModelForCausalLM.from_pretrained(TARGET, gguf_file="model.gguf", dtype=torch.float32)
    load_sibling("make_fixtures").write_reference(model, TARGET, source_ref["ids"], "gguf-kquants-q2_k-q3_k-q4_k-q5_k-q6_k-q4_1-q5_0-q5_1-f32")


if __name__ == "__main__":
    main()
