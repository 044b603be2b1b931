"""Writes a GGUF copy of the Qwen3 fixture with the gguf-py writer, in llama.cpp's conventions for its qwen3
architecture, and the reference outputs of transformers loading that GGUF file.

Usage: /work/venv/bin/python tools/make_family_gguf_fixture.py   (run after tools/make_family_fixtures.py)
Writes test/fixtures/models/qwen3-qknorm-gguf/:
  model.gguf          llama.cpp's qwen3 names and metadata (attn_q_norm / attn_k_norm, key_length = head_dim 24);
                      q/k rows as stored (llama.cpp permutes them only for its llama architecture); a mix of
                      Q8_0, Q4_0, BF16, F16 and F32 tensors
  tokenizer.json, tokenizer_config.json   copied from the safetensors fixture
  reference.json      logits, cache and decode steps from transformers on the weights it reads from the GGUF
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import write_reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "test" / "fixtures" / "models"
SOURCE = MODELS / "qwen3-qknorm-headdim24-bf16"
TARGET = MODELS / "qwen3-qknorm-gguf"

Q = gguf.GGMLQuantizationType

GGUF_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def gguf_name(hf: str) -> str:
    top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    if hf in top:
        return top[hf]
    parts = hf.split(".")
    return f"blk.{parts[2]}.{GGUF_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"


def storage_for(name: str) -> Q:
    if name.endswith("norm.weight"):
        return Q.F32
    if ".q_proj." in name or ".up_proj." in name or name == "lm_head.weight":
        return Q.Q8_0
    if ".k_proj." in name or ".down_proj." in name:
        return Q.Q4_0
    if ".v_proj." in name:
        return Q.F16
    return Q.BF16


def main() -> None:
    config = json.loads((SOURCE / "config.json").read_text())
    weights = load_file(str(SOURCE / "model.safetensors"))
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(TARGET / "model.gguf"), "qwen3")
    writer.add_name("kvlens qwen3 fixture")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_eos_token_id(config["eos_token_id"][0])
    for hf in sorted(weights):
        data = weights[hf].to(torch.float32).numpy()
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

    # transformers' own GGUF reader (config from the metadata, tensors dequantized and renamed by it), loaded into
    # the model it builds from that config: from_pretrained(gguf_file=...) would do the same through accelerate.
    # Its qwen3 table does not read attention.key_length (head_dim falls back to 128), so the model is built from the
    # fixture's config once every value the table does read is checked against it.
    gguf_config = AutoConfig.from_pretrained(TARGET, gguf_file="model.gguf")
    hf_config = AutoConfig.from_pretrained(SOURCE)
    for key in ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "rms_norm_eps", "vocab_size"):
        ours, theirs = getattr(gguf_config, key), getattr(hf_config, key)
        # GGUF stores the epsilon as float32.
        assert ours == theirs or (isinstance(ours, float) and math.isclose(ours, theirs, rel_tol=1e-6)), (key, ours, theirs)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    state = load_gguf_checkpoint(str(TARGET / "model.gguf"), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    ids = json.loads((SOURCE / "reference.json").read_text())["ids"]
    write_reference(model, TARGET, ids, "gguf-mixed-q8_0-q4_0-bf16-f16-f32")


if __name__ == "__main__":
    main()
