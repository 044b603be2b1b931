"""Writes test/fixtures/kv-scoring/reference.json: a small Llama-shaped attention layer (rotated queries of every prompt
token, keys, values) and the token scores of the scoring methods as their reference formulations compute them, in
torch with transformers' own rotary embedding. The independent reference for the scoring of src/engine/kv/methods/
keydiff.ts, expectedattention.ts and think.ts.

- KeyDiff (Park et al. 2025): minus the cosine similarity of each key to the mean of the normalised keys, per KV head.
- Expected Attention (Devoto et al. 2025, as kvpress scores it): the mean and covariance of the pre-RoPE queries of the
  prompt after its first `sinks` tokens, both moved by the RoPE rotation averaged over the next `future` positions; each
  key's expected logit mu.k/sqrt(d) + k^T cov k/(2d), a softmax over the keys after the sinks, averaged over the query
  heads of a KV head, times the value norm.
- ThinK (Xu et al. 2024, as kvpress scores key channels): the mean squared window query times the mean squared key.

Usage: /work/venv/bin/python tools/make_kv_scoring_fixture.py
"""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "kv-scoring" / "reference.json"
N, HEADS, KV_HEADS, D, HIDDEN = 48, 4, 2, 16, 64
SINKS, FUTURE = 4, 512


def keydiff(keys: torch.Tensor) -> torch.Tensor:
    """keys [kv, n, d] -> [kv, n]"""
    anchor = torch.nn.functional.normalize(keys, dim=-1).mean(dim=1, keepdim=True)
    return -torch.nn.functional.cosine_similarity(keys, anchor, dim=-1)


def expected_attention(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, rope: LlamaRotaryEmbedding,
                       covariance: bool) -> torch.Tensor:
    """queries [h, n, d] before RoPE; keys, values [kv, n, d] (keys rotated) -> scores [kv, n - SINKS]"""
    q = queries[:, SINKS:]
    mu = q.mean(dim=1)  # [h, d]
    centred = q - mu[:, None]
    cov = centred.transpose(1, 2) @ centred / q.shape[1]  # [h, d, d]
    cos, sin = rope(mu[None], torch.arange(N, N + FUTURE)[None])
    cos, sin = cos[0], sin[0]  # [future, d]
    swap = torch.zeros(D, D)
    swap[D // 2:, : D // 2] = torch.eye(D // 2)
    swap[: D // 2, D // 2:] = -torch.eye(D // 2)
    rotation = (cos[:, None, :] * torch.eye(D) + sin[:, None, :] * swap).mean(dim=0)
    mu = mu @ rotation.T
    cov = rotation @ cov @ rotation.T
    k = keys[:, SINKS:].repeat_interleave(HEADS // KV_HEADS, dim=0)  # [h, n', d]
    logits = (k @ mu[:, :, None])[..., 0] / math.sqrt(D)
    if covariance:
        logits = logits + torch.einsum("hnd,hde,hne->hn", k, cov, k) / D / 2
    scores = torch.softmax(logits, dim=-1).view(KV_HEADS, HEADS // KV_HEADS, -1).mean(dim=1)
    return scores * values[:, SINKS:].norm(dim=-1)


def think(queries_rot: torch.Tensor, keys: torch.Tensor, window: int) -> torch.Tensor:
    """ThinK's key channel scores as kvpress computes them: mean squared window query (over the window and the query heads
    of a KV head) times mean squared key, per channel. queries [h, n, d] rotated, keys [kv, n, d] -> [kv, d]"""
    q = queries_rot[:, -window:].pow(2).mean(dim=1).view(KV_HEADS, HEADS // KV_HEADS, D).mean(dim=1)
    return q * keys.pow(2).mean(dim=1)


def main() -> None:
    torch.manual_seed(20261202)
    config = LlamaConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=D,
                         rope_theta=10000.0, max_position_embeddings=4096)
    rope = LlamaRotaryEmbedding(config)
    hidden = torch.randn(N, HIDDEN)
    w_q = torch.randn(HEADS * D, HIDDEN) * 0.3
    queries = (hidden @ w_q.T).view(N, HEADS, D).transpose(0, 1)  # [h, n, d]
    keys_raw = torch.randn(KV_HEADS, N, D) + torch.randn(1, 1, D) * 2  # a shared direction, as real keys have
    values = torch.randn(KV_HEADS, N, D) * torch.rand(KV_HEADS, N, 1) * 2
    cos, sin = rope(queries[None], torch.arange(N)[None])
    q_rot, k_rot = apply_rotary_pos_emb(queries[None], keys_raw[None], cos, sin)
    q_rot, k_rot = q_rot[0], k_rot[0]
    def flat(t: torch.Tensor) -> str:
        """base64 of little-endian float32"""
        return base64.b64encode(t.contiguous().to(torch.float32).numpy().astype("<f4").tobytes()).decode()

    out = {
        "config": {"numHeads": HEADS, "numKvHeads": KV_HEADS, "headDim": D, "ropeTheta": 10000.0, "length": N, "sinks": SINKS, "future": FUTURE},
        # kvlens layouts: queries [n, heads, d], keys/values [n, kvHeads, d], scores [kvHeads, n]
        "queries": flat(q_rot.transpose(0, 1)),
        "keys": flat(k_rot.transpose(0, 1)),
        "values": flat(values.transpose(0, 1)),
        "keydiff": flat(keydiff(k_rot)),
        "expectedAttention": flat(expected_attention(queries, k_rot, values, rope, True)),
        "expectedAttentionMeanOnly": flat(expected_attention(queries, k_rot, values, rope, False)),
        # ThinK over the last 32 queries: [kvHeads, d]
        "think": flat(think(q_rot, k_rot, 32)),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
