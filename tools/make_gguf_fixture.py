"""Writes a GGUF copy of the llama fixture with the gguf-py writer, in llama.cpp's conventions, and
the reference outputs of transformers loading that GGUF file.

Usage: /work/venv/bin/python tools/make_gguf_fixture.py   (needs `pip install gguf` in the venv)
Run after tools/make_fixtures.py. Writes test/fixtures/models/llama-gqa-tied-rope3-gguf/:
  model.gguf                       mixed Q8_0 / Q4_0 / F16 / F32 tensors, q/k rows permuted as llama.cpp's
                                   converter does, llama3 rope scaling as a rope_freqs tensor
  tokenizer.json, tokenizer_config.json   copied from the safetensors fixture (GGUF tokenizers are not read)
  transformers-weights.safetensors the fp32 weights transformers dequantizes and un-permutes from the GGUF
  reference.json                   logits/KV/attention from transformers on those weights (same format as
                                   the other fixtures)
"""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "test" / "fixtures" / "models"
SOURCE = MODELS / "llama-gqa-tied-rope3-f32"
TARGET = MODELS / "llama-gqa-tied-rope3-gguf"

Q = gguf.GGMLQuantizationType


def load_sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    # llama.cpp's converter: HF rotate-half rows [head, 2, half] stored as interleaved [head, half, 2].
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def llama3_rope_factors(config: dict) -> np.ndarray:
    rope = config["rope_parameters"]
    return load_sibling("make_bench_models").llama3_rope_factors(rope["rope_theta"], config["head_dim"], rope, np.float32)


# Which storage each HF tensor gets: a mix, so every reader path is exercised on real writer output.
def storage_for(name: str) -> Q:
    if name.endswith("norm.weight"):
        return Q.F32
    if name == "model.embed_tokens.weight" or ".q_proj." in name or ".up_proj." in name:
        return Q.Q8_0
    if ".k_proj." in name or ".down_proj." in name:
        return Q.Q4_0
    if ".v_proj." in name:
        return Q.F16
    return Q.F32


GGUF_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    parts = hf.split(".")
    layer, module, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def main() -> None:
    config = json.loads((SOURCE / "config.json").read_text())
    weights = load_file(str(SOURCE / "model.safetensors"))
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    path = TARGET / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("kvlens llama fixture")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_tensor("rope_freqs.weight", llama3_rope_factors(config))
    for hf in sorted(weights):
        data = weights[hf].astype(np.float32)
        if ".q_proj." in hf:
            data = llama_cpp_permute(data, config["num_attention_heads"])
        elif ".k_proj." in hf:
            data = llama_cpp_permute(data, config["num_key_value_heads"])
        qtype = storage_for(hf)
        if qtype == Q.F32:
            writer.add_tensor(gguf_name(hf), data)
        elif qtype == Q.F16:
            writer.add_tensor(gguf_name(hf), data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name(hf), gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(SOURCE / name, TARGET / name)

    # transformers reads GGUF hyper-parameters but not llama3 scaling from rope_freqs: pass the fixture config.
    hf_config = LlamaConfig.from_pretrained(SOURCE)
    model = AutoModelForCausalLM.from_pretrained(TARGET, gguf_file="model.gguf", config=hf_config, dtype=torch.float32)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(TARGET / "transformers-weights.safetensors"))

    load_sibling("make_fixtures").write_reference(model, TARGET, json.loads((SOURCE / "reference.json").read_text())["ids"], "gguf-mixed-q8_0-q4_0-f16-f32")


if __name__ == "__main__":
    main()
