"""MLD motion VAE: checkpoint key contract, masking/batching invariance, layer math, skip wiring, training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from reference import STATE_DICT_TSV
from torch import nn

from backend.model.config import VaeConfig, official_config, tiny_config
from backend.model.vae import MotionVae

OFFICIAL_VAE_PARAMETERS = 18_032_135  # MOTIONGPT3_SPEC.md §1


def tiny_vae(seed: int = 0, **overrides: int | float) -> MotionVae:
    torch.manual_seed(seed)
    return MotionVae(dataclasses.replace(tiny_config().vae, **overrides)).eval()


def checkpoint_vae_shapes() -> dict[str, list[int]]:
    """`vae.*` rows of the upstream state-dict listing, prefix stripped: key -> shape."""
    assert STATE_DICT_TSV.is_file(), f"missing reference listing {STATE_DICT_TSV}"
    shapes = {}
    for line in STATE_DICT_TSV.read_text().splitlines()[1:]:
        key, shape, _dtype = line.split("\t")
        if key.startswith("vae."):
            shapes[key.removeprefix("vae.")] = [int(n) for n in shape.strip("[]").split(",") if n.strip()]
    return shapes


def test_official_state_dict_matches_the_checkpoint_listing():
    model = MotionVae(official_config().vae)
    expected = checkpoint_vae_shapes()
    state = model.state_dict()
    assert len(expected) == 297  # MOTIONGPT3_SPEC.md §8.2
    assert sorted(state) == sorted(expected)
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_VAE_PARAMETERS


def test_shapes_and_zero_padding_of_the_public_api():
    model = tiny_vae()
    config = model.config
    features = torch.randn(3, 12, config.nfeats)
    lengths = torch.tensor([12, 5, 9])
    mu, logvar = model.encode_distribution(features, lengths)
    assert mu.shape == logvar.shape == (3, config.latent_size, config.latent_dim)
    decoded = model.decode(mu, lengths)
    assert decoded.shape == (3, 12, config.nfeats)
    assert torch.all(decoded[1, 5:] == 0) and torch.all(decoded[2, 9:] == 0)
    assert torch.all(decoded[1, :5].abs().sum(-1) > 0)


@torch.no_grad()
def test_encoding_is_independent_of_batch_padding():
    model = tiny_vae()
    lengths = [7, 15, 20]
    clips = [torch.randn(n, model.config.nfeats) for n in lengths]
    batch = torch.randn(3, 20, model.config.nfeats) * 5  # garbage beyond each length
    for b, clip in enumerate(clips):
        batch[b, : len(clip)] = clip
    mu_batch, logvar_batch = model.encode_distribution(batch, torch.tensor(lengths))
    for b, clip in enumerate(clips):
        mu, logvar = model.encode_distribution(clip[None], torch.tensor([len(clip)]))
        torch.testing.assert_close(mu_batch[b], mu[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(logvar_batch[b], logvar[0], atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.usefixtures("one_thread")  # bit-identity is per thread count (rows.py); test_inference covers 2 threads
@pytest.mark.parametrize("latent_size", [1, 3])
def test_decoding_is_independent_of_batch_padding(latent_size):
    """Eval decoding gives each clip the same numbers, bit for bit, alone or batched with longer and shorter clips
    (one latent token or several)."""
    model = tiny_vae(latent_size=latent_size)
    lengths = torch.tensor([7, 15, 20, 7, 11])
    z = torch.randn(5, model.config.latent_size, model.config.latent_dim)
    batch = model.decode(z, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model.decode(z[b : b + 1], torch.tensor([n]))
        assert alone.shape == (1, n, model.config.nfeats)
        assert torch.equal(batch[b, :n], alone[0])
        assert torch.all(batch[b, n:] == 0)


@torch.no_grad()
def test_encoder_ignores_values_beyond_each_length():
    model = tiny_vae()
    lengths = torch.tensor([6, 11])
    features = torch.randn(2, 11, model.config.nfeats)
    changed = features.clone()
    changed[0, 6:] = 1e3 * torch.randn(5, model.config.nfeats)
    torch.testing.assert_close(model.encode(features, lengths), model.encode(changed, lengths), atol=1e-6, rtol=0)


def reference_encoder_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """Post-norm layer with plain tensor ops: x [B, S, D] batch-first, padding [B, S] (True = ignored key)."""
    batch, seq, width = x.shape
    heads = layer.self_attn.num_heads
    head_dim = width // heads
    w_q, w_k, w_v = layer.self_attn.in_proj_weight.chunk(3)  # packed rows: q; k; v
    b_q, b_k, b_v = layer.self_attn.in_proj_bias.chunk(3)

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, seq, heads, head_dim).transpose(1, 2)  # [B, H, S, dh]

    q, k, v = split(x @ w_q.T + b_q), split(x @ w_k.T + b_k), split(x @ w_v.T + b_v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim)  # [B, H, S, S]
    scores = scores.masked_fill(padding[:, None, None, :], float("-inf"))
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    attended = (weights @ v).transpose(1, 2).reshape(batch, seq, width)
    attended = attended @ layer.self_attn.out_proj.weight.T + layer.self_attn.out_proj.bias

    def layer_norm(t: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        mean = t.mean(-1, keepdim=True)
        var = ((t - mean) ** 2).mean(-1, keepdim=True)
        return (t - mean) / torch.sqrt(var + 1e-5) * norm.weight + norm.bias

    h = layer_norm(x + attended, layer.norm1)
    inner = h @ layer.linear1.weight.T + layer.linear1.bias
    inner = 0.5 * inner * (1.0 + torch.erf(inner / math.sqrt(2.0)))  # exact GELU
    return layer_norm(h + inner @ layer.linear2.weight.T + layer.linear2.bias, layer.norm2)


@torch.no_grad()
def test_one_encoder_layer_equals_a_plain_tensor_recomputation():
    model = tiny_vae().double()
    layer = model.encoder.input_blocks[0]
    x = torch.randn(3, 9, model.config.latent_dim, dtype=torch.float64)
    padding = torch.arange(9) >= torch.tensor([9, 4, 6])[:, None]
    expected = reference_encoder_layer(layer, x, padding)
    actual = layer(x.transpose(0, 1), src_key_padding_mask=padding).transpose(0, 1)  # module is sequence-first
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


class AddConstant(nn.Module):
    """Stub block: x + c, ignoring masks."""

    def __init__(self, constant: float) -> None:
        super().__init__()
        self.constant = constant

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return x + self.constant


class RecordFusion(nn.Module):
    """Stub fusion: records (current, skip) halves of its input and passes the current half on."""

    def __init__(self, width: int, log: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.width, self.log = width, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current, skip = x[..., : self.width], x[..., self.width :]
        self.log.append((current, skip))
        return current


def test_skip_connections_are_last_in_first_out_with_current_features_first():
    model = tiny_vae(num_layers=7)  # 3 input blocks, so FIFO and LIFO orders differ
    stack, width = model.encoder, model.config.latent_dim
    log: list[tuple[torch.Tensor, torch.Tensor]] = []
    stack.input_blocks = nn.ModuleList(AddConstant(c) for c in (1.0, 2.0, 4.0))
    stack.middle_block = AddConstant(100.0)
    stack.output_blocks = nn.ModuleList(AddConstant(0.0) for _ in range(3))
    stack.linear_blocks = nn.ModuleList(RecordFusion(width, log) for _ in range(3))
    x = torch.zeros(5, 2, width)
    stack(x, src_key_padding_mask=None)
    assert [float(current.mean()) for current, _ in log] == [107.0, 107.0, 107.0]
    assert [float(skip.mean()) for _, skip in log] == [7.0, 3.0, 1.0]  # outputs of input blocks 2, 1, 0


@torch.no_grad()
def test_sampling_is_reproducible_per_generator_and_mean_without_sampling():
    model = tiny_vae()
    features, lengths = torch.randn(2, 10, model.config.nfeats), torch.tensor([10, 7])
    mu, logvar = model.encode_distribution(features, lengths)
    torch.testing.assert_close(model.encode(features, lengths), mu, atol=0, rtol=0)
    first = model.encode(features, lengths, sample=True, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # the global RNG must not matter when a generator is given
    again = model.encode(features, lengths, sample=True, generator=torch.Generator().manual_seed(3))
    other = model.encode(features, lengths, sample=True, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.allclose(first, other)
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, mu + torch.exp(logvar / 2) * noise, atol=1e-6, rtol=0)


def test_invalid_lengths_and_too_long_clips_are_rejected():
    model = tiny_vae()  # max_positions 256: 254 frames to encode (2 query tokens), 256 to decode
    nfeats, width = model.config.nfeats, model.config.latent_dim
    with pytest.raises(ValueError, match="limit of 254 frames"):
        model.encode(torch.zeros(1, 255, nfeats), torch.tensor([255]))
    model.encode(torch.zeros(1, 254, nfeats), torch.tensor([254]))
    with pytest.raises(ValueError, match="limit of 256 frames"):
        model.decode(torch.zeros(1, 1, width), torch.tensor([257]))
    with pytest.raises(ValueError, match=">= 1"):
        model.encode(torch.zeros(2, 5, nfeats), torch.tensor([5, 0]))
    with pytest.raises(ValueError, match=">= 1"):
        model.decode(torch.zeros(1, 1, width), torch.tensor([0]))
    with pytest.raises(ValueError, match="exceeds the 5 frames"):
        model.encode(torch.zeros(2, 5, nfeats), torch.tensor([5, 6]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        model.encode(torch.zeros(2, 5, nfeats), torch.tensor([5]))
    with pytest.raises(ValueError, match="features must be"):
        model.encode(torch.zeros(2, 5, nfeats + 1), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="z must be"):
        model.decode(torch.zeros(1, width), torch.tensor([5]))


def test_kl_loss_matches_torch_distributions():
    mu, logvar = torch.randn(4, 1, 8), torch.randn(4, 1, 8)
    posterior = torch.distributions.Normal(mu, torch.exp(logvar / 2))
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(posterior, prior).mean()
    torch.testing.assert_close(MotionVae.kl_loss(mu, logvar), expected, atol=1e-6, rtol=1e-6)
    assert float(MotionVae.kl_loss(torch.zeros(3), torch.zeros(3))) == 0.0


def test_reconstruction_loss_ignores_padded_frames():
    target = torch.randn(2, 6, 3)
    pred = target + 0.1
    pred[1, 4:] = 50.0  # beyond length 4: must not count
    loss = MotionVae.reconstruction_loss(pred, target, torch.tensor([6, 4]))
    torch.testing.assert_close(loss, torch.tensor(0.5 * 0.1**2), atol=1e-6, rtol=0)


def test_training_reduces_reconstruction_loss():
    model = tiny_vae(seed=1)
    config: VaeConfig = model.config
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(24, 41, (8,), generator=generator)
    # Smooth, low-rank clips (like real motion): 2 sinusoids per clip mixed into every channel.
    t = torch.arange(40, dtype=torch.float32)[None, :, None] / 20.0  # seconds at 20 fps
    freq = 0.2 + 1.5 * torch.rand(8, 1, 2, generator=generator)
    phase = 2 * math.pi * torch.rand(8, 1, 2, generator=generator)
    mixing = torch.randn(2, config.nfeats, generator=generator) / 2
    features = torch.sin(2 * math.pi * freq * t + phase) @ mixing  # [8, 40, nfeats]
    features = features * (torch.arange(40)[None, :, None] < lengths[:, None, None])

    def recon_loss() -> float:
        model.eval()
        with torch.no_grad():
            pred = model.decode(model.encode(features, lengths), lengths)
            return float(model.reconstruction_loss(pred, features, lengths))

    before = recon_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        mu, logvar = model.encode_distribution(features, lengths)
        pred = model.decode(mu, lengths)  # posterior mean: the sampling path is pinned by its own test
        loss = model.reconstruction_loss(pred, features, lengths) + 1e-4 * model.kl_loss(mu, logvar)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = recon_loss()
    assert after < 0.5 * before, (before, after)
