#!/usr/bin/env python3
"""Generate the golden reference fixtures used by rrt's C++ tests.

Each fixture is a tiny Llama-family (Relaxed) Recursive Transformer built
independently here in plain PyTorch (autograd for gradients), evaluated in
float64 and stored as float32 in a safetensors file.  It holds:

  * every parameter, under the names rrt uses
    (``embed.weight``, ``block.{b}.attn.q.weight``, ``lora.{k}.{b}.q.A``, ...);
  * ``inputs`` / ``targets`` [N, T] I32 (targets use -1 as ignore index);
  * ``logits`` [N, T, V] and ``loss`` [1] of the forward pass;
  * ``grad.<param>`` = d loss / d param for every parameter;
  * ``adamw_losses`` [10]: the loss before each of 10 torch.optim.AdamW steps
    on the same batch, starting from the stored weights;
  * ``__metadata__.config``: a JSON string with every hyper-parameter needed
    to rebuild the model and the optimizer.

Fixtures written (all V=300, D=32, H=4, Hkv=2, Dh=8, F=64, N=2, T=17):

  relaxed_cycle.safetensors       B=2, K=3, cycle sharing, LoRA r=4 alpha=8,
                                  untied head
  plain_k1.safetensors            B=3, K=1 (plain model), no LoRA, tied head
  recursive_sequence.safetensors  B=2, K=3, sequence sharing, no LoRA,
                                  untied head
  masks.safetensors               B=2, K=2, cycle, LoRA r=4: the attention
                                  masks of issues 24 and 25 together:
                                  documents packed after EOS (attention
                                  within each, RoPE positions restarting),
                                  a sliding window of 4 on the layers
                                  layer_types names, logits soft-capped

How to run (from the repository root):

    pip install torch numpy          # or: pip install -r tools/requirements-fixtures.txt
    python3 tools/make_fixtures.py   # writes tests/fixtures/*.safetensors
    python3 tools/make_fixtures.py --out /tmp/fx   # somewhere else
    python3 tools/make_fixtures.py --only masks     # one fixture

The output is deterministic (fixed seeds, float64 CPU math, single thread),
so rerunning it should reproduce the committed files byte for byte on the same
PyTorch version; tiny last-bit differences across versions are possible and
harmless for tests that compare with a tolerance.
"""

import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# Module names in the order rrt lists them; LoRA adapters exist for all seven.
ATTN_MODULES = ("q", "k", "v", "o")
MLP_MODULES = ("gate", "up", "down")
LORA_MODULES = ATTN_MODULES + MLP_MODULES
IGNORE_INDEX = -1
STEPS = 10

# Shared by all fixtures; small enough that three files stay well under 2 MB.
BASE = dict(
    vocab=300,
    d_model=32,
    n_heads=4,
    n_kv_heads=2,
    head_dim=8,
    ffn=64,
    norm_eps=1e-5,
    rope_theta=10000.0,
    batch=2,
    seq_len=17,
)

ADAMW = dict(lr=3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
             decay_rule="ndim>=2")

FIXTURES = {
    "relaxed_cycle": dict(block_layers=2, loops=3, sharing="cycle",
                          lora_rank=4, lora_alpha=8.0, tied_head=False, seed=1),
    "plain_k1": dict(block_layers=3, loops=1, sharing="cycle",
                     lora_rank=0, lora_alpha=0.0, tied_head=True, seed=2),
    "recursive_sequence": dict(block_layers=2, loops=3, sharing="sequence",
                               lora_rank=0, lora_alpha=0.0, tied_head=False,
                               seed=3),
    # The soft-cap is small because this init's scores are (|s| ~ 0.1): tanh
    # must bend them for the fixture to test it.
    "masks": dict(block_layers=2, loops=2, sharing="cycle", lora_rank=4,
                  lora_alpha=8.0, tied_head=False, seed=4, sliding_window=4,
                  layer_types=["sliding_attention", "full_attention",
                               "sliding_attention"],
                  attn_logit_softcapping=0.05, document_eos=7),
}


# ----------------------------------------------------------------------------
# Attention masks (rrt's ops/attention.h and model/documents.h, written out)
# ----------------------------------------------------------------------------

def document_starts(inputs, eos):
    """doc_start [N, T]: a document starts after each EOS (eos < 0: none)."""
    N, T = inputs.shape
    start = torch.zeros(N, T, dtype=torch.int64)
    for n in range(N):
        s = 0
        for t in range(T):
            if eos >= 0 and t > 0 and int(inputs[n, t - 1]) == eos:
                s = t
            start[n, t] = s
    return start


def window_at(cfg, l):
    w = cfg.get("sliding_window", 0)
    types = cfg.get("layer_types", [])
    if w <= 0:
        return 0
    if not types:
        return w
    return w if types[l % len(types)] == "sliding_attention" else 0


def masked_attention(q, k, v, doc_start, window, cap):
    """q, k, v [N, H, T, Dh] -> [N, H, T, Dh]: key j visible to query i iff
    doc_start[i] <= j <= i and i - j < window (0: no window); scores
    s = q.k / sqrt(Dh) become cap tanh(s / cap) (cap 0: none)."""
    T, Dh = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
    if cap > 0:
        s = cap * torch.tanh(s / cap)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = (j <= i)[None] & (j >= doc_start[:, :, None])  # [N, T, T]
    if window > 0:
        allowed = allowed & (i - j < window)[None]
    s = s.masked_fill(~allowed[:, None], float("-inf"))
    return torch.softmax(s, -1) @ v


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

def module_shape(cfg, m):
    """[out, in] of projection m, following the Llama layout (H*Dh may != D)."""
    D, F_ = cfg["d_model"], cfg["ffn"]
    qd = cfg["n_heads"] * cfg["head_dim"]
    kvd = cfg["n_kv_heads"] * cfg["head_dim"]
    return {"q": (qd, D), "k": (kvd, D), "v": (kvd, D), "o": (D, qd),
            "gate": (F_, D), "up": (F_, D), "down": (D, F_)}[m]


def position_map(cfg, l):
    """(block layer b, loop k) that serves unrolled position l."""
    B, K = cfg["block_layers"], cfg["loops"]
    if cfg["sharing"] == "cycle":
        return l % B, l // B
    if cfg["sharing"] == "sequence":
        return l // K, l % K
    raise ValueError(cfg["sharing"])


def param_linear_name(b, m):
    group = "attn" if m in ATTN_MODULES else "mlp"
    return f"block.{b}.{group}.{m}.weight"


def init_params(cfg):
    """Create the parameters as an ordered dict name -> float64 tensor.

    The insertion order is the order tensors are written to the file, and the
    order random numbers are drawn, so it must stay fixed for determinism.
    """
    torch.manual_seed(cfg["seed"])
    V, D = cfg["vocab"], cfg["d_model"]
    r = cfg["lora_rank"]
    p = {}

    def normal(shape, std):
        return torch.randn(*shape, dtype=torch.float64) * std

    def norm_weight():
        # Not exactly 1, so a missing or misplaced norm weight shows up in tests.
        return 1.0 + 0.1 * torch.randn(D, dtype=torch.float64)

    p["embed.weight"] = normal((V, D), 1.0)
    for b in range(cfg["block_layers"]):
        p[f"block.{b}.attn_norm.weight"] = norm_weight()
        for m in ATTN_MODULES:
            out, inp = module_shape(cfg, m)
            p[param_linear_name(b, m)] = normal((out, inp), 1.0 / math.sqrt(inp))
        p[f"block.{b}.mlp_norm.weight"] = norm_weight()
        for m in MLP_MODULES:
            out, inp = module_shape(cfg, m)
            p[param_linear_name(b, m)] = normal((out, inp), 1.0 / math.sqrt(inp))
    if r > 0:
        # One adapter set per unrolled position, iterated in position order.
        for l in range(cfg["block_layers"] * cfg["loops"]):
            b, k = position_map(cfg, l)
            for m in LORA_MODULES:
                out, inp = module_shape(cfg, m)
                p[f"lora.{k}.{b}.{m}.A"] = normal((r, inp), 1.0 / math.sqrt(inp))
                # B is non-zero on purpose (unlike a fresh zero-init LoRA), so
                # the LoRA path contributes to logits and to every gradient.
                p[f"lora.{k}.{b}.{m}.B"] = normal((out, r), 0.5 / math.sqrt(r))
    p["final_norm.weight"] = norm_weight()
    if not cfg["tied_head"]:
        p["head.weight"] = normal((V, D), 1.0 / math.sqrt(D))

    # Round every parameter to a float32-representable value while keeping
    # float64 storage: the float32 weights in the file are then *exactly* the
    # weights the float64 reference used, so a consumer that loads them gets
    # the stored logits up to its own arithmetic error only.
    return {n: t.float().double() for n, t in p.items()}


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta, positions=None):
    """HF-Llama rotate_half RoPE over the full head dim. x: [N, H, T, Dh];
    positions [N, T] (None: 0..T-1)."""
    T, Dh = x.shape[-2], x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)
    if positions is None:
        positions = torch.arange(T)
    else:
        positions = positions[:, None, :]  # [N, 1, T]: every head
    ang = positions.to(torch.float64)[..., None] * inv_freq
    cos = torch.cat([ang.cos(), ang.cos()], -1)  # [..., T, Dh]
    sin = torch.cat([ang.sin(), ang.sin()], -1)
    half = Dh // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def residual_stream(cfg, p, inputs):
    """The residual stream after each unrolled position: L tensors [N, T, D].

    With cycle sharing, entry k * B - 1 is the end of loop k (an early exit's input;
    tools/make_kd_fixtures.py uses it).
    """
    H, Hkv, Dh = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    eps, r = cfg["norm_eps"], cfg["lora_rank"]
    scale = cfg["lora_alpha"] / r if r > 0 else 0.0
    N, T = inputs.shape

    x = p["embed.weight"][inputs]
    doc_start = document_starts(inputs, cfg.get("document_eos", -1))
    positions = torch.arange(T)[None, :] - doc_start
    cap = cfg.get("attn_logit_softcapping", 0.0)
    masked = cfg.get("document_eos", -1) >= 0 or cfg.get("sliding_window", 0) > 0 or cap > 0
    stream = []
    for l in range(cfg["block_layers"] * cfg["loops"]):
        b, k = position_map(cfg, l)

        def lin(h, m):
            y = h @ p[param_linear_name(b, m)].T
            if r > 0:
                # Position-specific low-rank delta on top of the shared weight.
                y = y + scale * ((h @ p[f"lora.{k}.{b}.{m}.A"].T)
                                 @ p[f"lora.{k}.{b}.{m}.B"].T)
            return y

        xn = rmsnorm(x, p[f"block.{b}.attn_norm.weight"], eps)
        q = lin(xn, "q").view(N, T, H, Dh).transpose(1, 2)
        kk = lin(xn, "k").view(N, T, Hkv, Dh).transpose(1, 2)
        v = lin(xn, "v").view(N, T, Hkv, Dh).transpose(1, 2)
        q = rope(q, cfg["rope_theta"], positions if masked else None)
        kk = rope(kk, cfg["rope_theta"], positions if masked else None)
        # GQA: query head h reads kv head h // (H / Hkv); repeat_interleave
        # produces exactly that grouping.
        rep = H // Hkv
        kk = kk.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        if masked:
            att = masked_attention(q, kk, v, doc_start, window_at(cfg, l), cap)
        else:
            att = F.scaled_dot_product_attention(q, kk, v, is_causal=True)
        att = att.transpose(1, 2).reshape(N, T, H * Dh)
        x = x + lin(att, "o")

        xn2 = rmsnorm(x, p[f"block.{b}.mlp_norm.weight"], eps)
        x = x + lin(F.silu(lin(xn2, "gate")) * lin(xn2, "up"), "down")
        stream.append(x)
    return stream


def forward(cfg, p, inputs):
    """Logits [N, T, V] for int64 inputs [N, T]."""
    x = residual_stream(cfg, p, inputs)[-1]
    h = rmsnorm(x, p["final_norm.weight"], cfg["norm_eps"])
    head = p["embed.weight"] if cfg["tied_head"] else p["head.weight"]
    return h @ head.T


def loss_fn(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                           targets.reshape(-1), ignore_index=IGNORE_INDEX)


# ----------------------------------------------------------------------------
# safetensors writer / reader (by hand, so the format is explicit)
# ----------------------------------------------------------------------------

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i4"): "I32"}
_NP = {"F32": np.dtype("<f4"), "I32": np.dtype("<i4")}


def write_safetensors(path, tensors, metadata):
    """tensors: ordered dict name -> numpy array (float32 or int32)."""
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        raw = a.tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = metadata
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad with spaces so the data section starts 8-byte aligned.
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e],
                                  dtype=_NP[h["dtype"]]).reshape(h["shape"])
    return out, meta


# ----------------------------------------------------------------------------
# Fixture generation
# ----------------------------------------------------------------------------

def make_batch(cfg):
    V, N, T = cfg["vocab"], cfg["batch"], cfg["seq_len"]
    # Drawn after the parameters from the same seeded generator.
    tokens = torch.randint(0, V, (N, T + 1), dtype=torch.int64)
    inputs = tokens[:, :T].clone()
    targets = tokens[:, 1:].clone()
    # Exercise the ignore index: mid-sequence in row 0, last position in row 1.
    targets[0, 3] = IGNORE_INDEX
    targets[1, T - 1] = IGNORE_INDEX
    eos = cfg.get("document_eos", -1)
    if eos >= 0:
        # Documents: row 0 as [0, 5) [5, 11) [11, 17), row 1 as [0, 13) [13, 17).
        inputs[inputs == eos] = eos + 1
        for n, t in ((0, 4), (0, 10), (1, 12)):
            inputs[n, t] = eos
    return inputs, targets


def run_adamw(cfg, params, inputs, targets):
    """Losses before each of STEPS AdamW steps, from a copy of params."""
    p = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    # Decay only matrices (ndim >= 2); norm weights (1-D) are not decayed.
    decay = [t for t in p.values() if t.ndim >= 2]
    no_decay = [t for t in p.values() if t.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": ADAMW["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
        eps=ADAMW["eps"])
    losses = []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(cfg, p, inputs), targets)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses


def build_fixture(name, spec):
    cfg = dict(BASE, **spec)
    params = init_params(cfg)
    inputs, targets = make_batch(cfg)

    # Forward + backward once at the initial weights.
    p = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    logits = forward(cfg, p, inputs)
    loss = loss_fn(logits, targets)
    loss.backward()
    grads = {n: t.grad for n, t in p.items()}

    adamw_losses = run_adamw(cfg, params, inputs, targets)

    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {}
    for n, t in params.items():
        tensors[n] = f32(t)
    tensors["inputs"] = inputs.to(torch.int32).numpy()
    tensors["targets"] = targets.to(torch.int32).numpy()
    tensors["logits"] = f32(logits)
    tensors["loss"] = np.array([loss.item()], dtype=np.float32)
    for n, g in grads.items():
        tensors["grad." + n] = f32(g)
    tensors["adamw_losses"] = np.array(adamw_losses, dtype=np.float32)

    config = {
        "vocab": cfg["vocab"], "d_model": cfg["d_model"],
        "n_heads": cfg["n_heads"], "n_kv_heads": cfg["n_kv_heads"],
        "head_dim": cfg["head_dim"], "ffn": cfg["ffn"],
        "norm_eps": cfg["norm_eps"], "rope_theta": cfg["rope_theta"],
        "tied_head": cfg["tied_head"],
        "block_layers": cfg["block_layers"], "loops": cfg["loops"],
        "sharing": cfg["sharing"],
        "lora_rank": cfg["lora_rank"], "lora_alpha": cfg["lora_alpha"],
        "batch": cfg["batch"], "seq_len": cfg["seq_len"],
        "ignore_index": IGNORE_INDEX,
        "adamw": dict(ADAMW), "steps": STEPS, "seed": cfg["seed"],
    }
    for key in ("sliding_window", "layer_types", "attn_logit_softcapping",
                "document_eos"):
        if key in cfg:
            config[key] = cfg[key]
    # safetensors metadata values must be strings.
    meta = {"config": json.dumps(config, sort_keys=True)}
    return tensors, meta


def self_check(path):
    """Reload a written file and verify it is internally consistent."""
    t, meta = read_safetensors(path)
    cfg = json.loads(meta["config"])
    pnames = [n for n in t if not n.startswith("grad.") and n not in
              ("inputs", "targets", "logits", "loss", "adamw_losses")]
    p = {n: torch.from_numpy(t[n].astype(np.float64)) for n in pnames}
    inputs = torch.from_numpy(t["inputs"].astype(np.int64))
    targets = torch.from_numpy(t["targets"].astype(np.int64))
    logits = forward(cfg, p, inputs)
    loss = loss_fn(logits, targets).item()
    ref = torch.from_numpy(t["logits"].astype(np.float64))
    lerr = ((logits - ref).abs().max() / ref.abs().max()).item()
    serr = abs(loss - float(t["loss"][0])) / abs(loss)
    assert lerr < 1e-5, f"{path}: logits rel err {lerr}"
    assert serr < 1e-5, f"{path}: loss rel err {serr}"
    for n in pnames:
        assert ("grad." + n) in t, f"{path}: missing grad.{n}"
        assert np.any(t["grad." + n] != 0), f"{path}: grad.{n} all zero"
        assert np.all(np.isfinite(t["grad." + n])), f"{path}: grad.{n} not finite"
    al = t["adamw_losses"]
    assert abs(al[0] - t["loss"][0]) <= 1e-6 * abs(al[0]), f"{path}: step-0 loss"
    # Same batch every step, so the loss should fall clearly over 10 steps.
    assert al[-1] < 0.95 * al[0], f"{path}: AdamW losses do not decrease: {al}"
    return dict(loss=float(t["loss"][0]), adamw_first=float(al[0]),
                adamw_last=float(al[-1]), logits_rel_err=lerr,
                n_params=sum(t[n].size for n in pnames),
                size=os.path.getsize(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("tests", "fixtures"),
                    help="output directory (default: tests/fixtures)")
    ap.add_argument("--only", default=None,
                    help="write only this fixture (e.g. masks)")
    args = ap.parse_args()

    # Single-threaded float64 CPU math keeps results reproducible run to run.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name, spec in FIXTURES.items():
        if args.only and name != args.only:
            continue
        tensors, meta = build_fixture(name, spec)
        path = os.path.join(args.out, name + ".safetensors")
        write_safetensors(path, tensors, meta)
        info = self_check(path)
        total += info["size"]
        print(f"{path}: {info['size']} bytes, {info['n_params']} params, "
              f"loss {info['loss']:.6f}, adamw {info['adamw_first']:.6f} -> "
              f"{info['adamw_last']:.6f}, logits rel err "
              f"{info['logits_rel_err']:.2e}")
    print(f"total {total} bytes")
    assert total < 2 * 1024 * 1024, "fixtures exceed the 2 MB budget"


if __name__ == "__main__":
    main()
