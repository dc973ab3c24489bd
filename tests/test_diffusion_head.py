"""Diffusion head: checkpoint key contract, DDPM schedule, exact-Gaussian sampling oracle, seeds, CFG, cancel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from reference import STATE_DICT_TSV
from torch import nn

from backend.model.config import official_config, tiny_config
from backend.model.diffusion_head import (
    DiffusionHead,
    GaussianSchedule,
    GenerationCancelled,
    randn_like_rows,
    timestep_embedding,
)

TINY = tiny_config()
D = TINY.diffusion
# Independent of the module: ᾱ of the linear schedule, recomputed here from the config numbers.
ALPHA_BAR = np.cumprod(1.0 - np.linspace(D.beta_start, D.beta_end, D.num_timesteps))

pytestmark = pytest.mark.usefixtures("one_thread")


def tsv_rows(prefix: str) -> dict[str, list[int]]:
    path = STATE_DICT_TSV
    assert path.is_file(), f"missing reference state-dict listing {path}"
    rows = {}
    for line in path.read_text().splitlines()[1:]:
        key, shape, _ = line.split("\t")
        if key.startswith(prefix):
            rows[key[len(prefix) :]] = [int(v) for v in shape.strip("[]").split(",") if v.strip()]
    return rows


class AnalyticGaussianEps(nn.Module):
    """Exact E[ε | x_t] for data x0 ~ N(m, s²) per dimension; m = c[:, 0, :D], s = c[:, 1, :D].

    Stands in for `SimpleMLPAdaLN` (same `cond_embed` / `denoise` / `forward` interface); `t` must be the
    ORIGINAL 1000-step index, so a sampler passing respaced indices would produce the wrong distribution.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim, self.calls, self.rows = dim, 0, []
        self.cond_embed = nn.Identity()

    def denoise(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows.append(x.shape[0])
        a = torch.as_tensor(ALPHA_BAR, dtype=torch.float64)[t.cpu()].view(-1, 1, 1).to(x)  # [N, 1, 1]
        m, s = c[:, :1, : self.dim], c[:, 1:2, : self.dim]  # [N, 1, D]
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s**2 + 1 - a)

    def time_embed(self, t: torch.Tensor) -> torch.Tensor:
        """The steps' "embeddings": the timesteps themselves (the predictor needs the original index)."""
        return t

    def modulations_at(self, t: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampler's step-invariant precomputation: here just (t, c) per step, [K, N] and [K, N, H, Z]."""
        return t[:, None].expand(-1, c.shape[0]), c[None].expand(len(t), *c.shape)

    def denoise_modulated(self, x: torch.Tensor, terms: list[torch.Tensor]) -> torch.Tensor:
        return self.denoise(x, *terms)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.denoise(x, t, self.cond_embed(c))


def analytic_head(config=TINY) -> DiffusionHead:
    head = DiffusionHead(config)
    head.net = AnalyticGaussianEps(config.latent_dim)
    return head


def gaussian_cond(means: list[float], stds: list[float], rows_each: int) -> torch.Tensor:
    """Condition rows [len·rows_each, H, Z] encoding (m, s) for the analytic predictor."""
    h, z = TINY.backbone.holders_per_motion, TINY.hidden_dim
    blocks = []
    for m, s in zip(means, stds, strict=True):
        c = torch.zeros(rows_each, h, z)
        c[:, 0], c[:, 1] = m, s
        blocks.append(c)
    return torch.cat(blocks)


def exact_sampler_moments(m: float, s: float, steps: int) -> tuple[float, float]:
    """Mean and variance of the ancestral fixed-small-σ sampler's output for N(m, s²) data, in closed form.

    The chain is linear-Gaussian, so (mean, var) propagate exactly from x_T ~ N(0, 1); written from the DDPM
    formulas with E[x0|x] = m + √ᾱ s²(x − √ᾱ m)/(ᾱ s² + 1 − ᾱ), not from the module's coefficient tables.
    """
    kept = [round(k * (D.num_timesteps - 1) / (steps - 1)) for k in range(steps)]
    mean, var = 0.0, 1.0
    for k in reversed(range(steps)):
        ab = ALPHA_BAR[kept[k]]
        ab_prev = ALPHA_BAR[kept[k - 1]] if k > 0 else 1.0
        beta = 1 - ab / ab_prev
        gain = np.sqrt(ab) * s**2 / (ab * s**2 + 1 - ab)  # x̂0 = gain·x + (1 − gain·√ᾱ)·m
        c1, c2 = np.sqrt(ab_prev) * beta / (1 - ab), np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        a, b = c1 * gain + c2, c1 * (1 - gain * np.sqrt(ab)) * m
        sigma2 = beta * (1 - ab_prev) / (1 - ab) if k > 0 else 0.0
        mean, var = a * mean + b, a * a * var + sigma2
    return mean, var


# --- checkpoint contract ---------------------------------------------------------------------------------


def test_official_state_dict_matches_checkpoint_listing():
    expected = tsv_rows("lm.diffloss.")
    head = DiffusionHead(official_config())
    got = {k: list(v.shape) for k, v in head.state_dict().items()}
    assert got == expected
    assert sum(p.numel() for p in head.parameters()) == 27_947_776
    assert list(head.cond_shape) == tsv_rows("lm.fake_latent")[""]  # the null condition fits the condition


# --- schedule ----------------------------------------------------------------------------------------------


def test_linear_schedule_terminal_alpha_bar():
    schedule = GaussianSchedule.linear(D.beta_start, D.beta_end, D.num_timesteps)
    assert schedule.alphas_cumprod[999] == pytest.approx(0.00158, abs=5e-6)
    np.testing.assert_allclose(schedule.alphas_cumprod, ALPHA_BAR, rtol=1e-12)


def test_respaced_timesteps_and_cumulative_product():
    schedule = GaussianSchedule.linear(D.beta_start, D.beta_end, D.num_timesteps)
    chain = schedule.respaced(100)
    assert len(chain.timesteps) == 100
    assert list(chain.timesteps[:8]) == [0, 10, 20, 30, 40, 50, 61, 71]
    assert list(chain.timesteps[-3:]) == [979, 989, 999]
    np.testing.assert_allclose(np.cumprod(1 - chain.betas), ALPHA_BAR[chain.timesteps], rtol=1e-12)
    for steps in (20, 50):
        kept = schedule.respaced(steps).timesteps
        assert kept[0] == 0 and kept[-1] == 999 and len(set(kept)) == steps


def test_posterior_coefficients_by_hand():
    chain = GaussianSchedule.linear(D.beta_start, D.beta_end, D.num_timesteps).respaced(100)
    k, ab, ab_prev = 6, ALPHA_BAR[61], ALPHA_BAR[50]  # chain step 6 jumps from original step 50 to 61
    beta = 1 - ab / ab_prev
    np.testing.assert_allclose(chain.posterior_mean_coef1[k], beta * np.sqrt(ab_prev) / (1 - ab), rtol=1e-10)
    np.testing.assert_allclose(chain.posterior_mean_coef2[k], (1 - ab_prev) * np.sqrt(1 - beta) / (1 - ab), rtol=1e-10)
    np.testing.assert_allclose(chain.posterior_variance[k], beta * (1 - ab_prev) / (1 - ab), rtol=1e-10)
    assert chain.posterior_variance[0] == 0.0
    np.testing.assert_allclose(chain.posterior_log_variance_clipped[0], np.log(chain.posterior_variance[1]))
    x0, noise, t = torch.randn(3, 1, 4), torch.randn(3, 1, 4), torch.tensor([0, 500, 999])
    expected = torch.as_tensor(np.sqrt(ALPHA_BAR[[0, 500, 999]]), dtype=torch.float32).view(3, 1, 1) * x0
    expected += torch.as_tensor(np.sqrt(1 - ALPHA_BAR[[0, 500, 999]]), dtype=torch.float32).view(3, 1, 1) * noise
    base = GaussianSchedule.linear(D.beta_start, D.beta_end, D.num_timesteps)
    torch.testing.assert_close(base.q_sample(x0, t, noise), expected)


def test_timestep_embedding_by_hand():
    emb = timestep_embedding(torch.tensor([0, 1]), 8)  # half = 4, f_i = 10000^(-i/4)
    torch.testing.assert_close(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    f = 10000.0 ** (-np.arange(4) / 4)
    torch.testing.assert_close(emb[1], torch.tensor(np.concatenate([np.cos(f), np.sin(f)]), dtype=torch.float32))


# --- sampling oracles with the exact ε-predictor --------------------------------------------------------


def test_sampling_reproduces_gaussian_data():
    means, stds, rows = [0.5, -2.0], [1.0, 2.0], 1250  # 1250 rows × 16 dims = 20,000 samples per (m, s)
    head = analytic_head()
    x = head.sample(gaussian_cond(means, stds, rows), generator=torch.Generator().manual_seed(0))  # 100 steps
    assert x.shape == (2 * rows, 1, TINY.latent_dim)
    for i, (m, s) in enumerate(zip(means, stds, strict=True)):
        values = x[i * rows : (i + 1) * rows].double().flatten().numpy()
        n = values.size
        se_mean, se_var = s / np.sqrt(n), s**2 * np.sqrt(2 / n)
        exact_mean, exact_var = exact_sampler_moments(m, s, 100)
        # The Monte Carlo moments equal the sampler's closed-form moments within 5 standard errors ...
        assert abs(values.mean() - exact_mean) < 5 * se_mean
        assert abs(values.var() - exact_var) < 5 * se_var
        # ... and are the data's: the mean to 1% of s (x_T ~ N(0, 1) although ᾱ_999 = 0.00158 > 0); the
        # fixed-small σ² (upstream `sigma_small`) loses some variance: < 8% at 100 steps, < 1% on the full chain.
        assert abs(values.mean() - m) < 5 * se_mean + 0.01 * s
        assert abs(values.var() / s**2 - 1) < 0.08 + 5 * se_var / s**2
        assert abs(exact_sampler_moments(m, s, 1000)[1] / s**2 - 1) < 0.01


def test_guidance_is_linear_in_epsilon():
    """For the exact predictor, ε_u + w(ε_c − ε_u) is the predictor of N(m_u + w(m_c − m_u), s²)."""
    head, rows, w = analytic_head(), 64, 3.0
    cond = gaussian_cond([1.0], [0.5], rows)
    null = gaussian_cond([0.2], [0.5], 1)[0]
    guided = head.sample(cond, null, guidance_scale=w, steps=50, generator=torch.Generator().manual_seed(3))
    target = gaussian_cond([0.2 + w * (1.0 - 0.2)], [0.5], rows)
    plain = head.sample(target, steps=50, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(guided, plain, atol=1e-5, rtol=1e-5)
    assert set(head.net.rows) == {rows, 2 * rows}  # guided calls ran on [x; x]


def test_guidance_scale_one_is_the_conditional_path():
    head, cond = analytic_head(), gaussian_cond([1.0], [0.5], 8)
    null = gaussian_cond([-3.0], [2.0], 1)[0]
    with_null = head.sample(cond, null, guidance_scale=1.0, steps=20, generator=torch.Generator().manual_seed(5))
    without = head.sample(cond, None, guidance_scale=1.0, steps=20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(with_null, without)
    with pytest.raises(ValueError, match="null_cond"):
        head.sample(cond, None, guidance_scale=2.0)


# --- seeds ---------------------------------------------------------------------------------------------------


def test_randn_like_rows_per_row_generators():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    batch = randn_like_rows((3, 1, 5), gens, "cpu")
    for i, seed in enumerate((1, 2, 3)):
        assert torch.equal(batch[i], torch.randn(1, 5, generator=torch.Generator().manual_seed(seed)))
    with pytest.raises(ValueError):
        randn_like_rows((2, 1, 5), gens, "cpu")


@pytest.fixture(scope="module")
def tiny_head() -> DiffusionHead:
    torch.manual_seed(0)
    return DiffusionHead(TINY).eval()


def test_same_seed_same_sample_different_seed_differs(tiny_head: DiffusionHead):
    cond, null = torch.randn(3, 4, TINY.hidden_dim), torch.zeros(4, TINY.hidden_dim)

    def run(seed: int) -> torch.Tensor:
        return tiny_head.sample(cond, null, 2.5, steps=20, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(7), run(7))
    assert not torch.allclose(run(7), run(8))


def test_row_sample_independent_of_batch_companions(tiny_head: DiffusionHead):
    cond, null = torch.randn(3, 4, TINY.hidden_dim), torch.zeros(4, TINY.hidden_dim)
    seeds = (11, 12, 13)
    batch = tiny_head.sample(cond, null, 2.5, steps=20, generator=[torch.Generator().manual_seed(s) for s in seeds])
    alone = tiny_head.sample(cond[1:2], null, 2.5, steps=20, generator=[torch.Generator().manual_seed(12)])
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=1e-5)  # matmul blocking may differ by ulps
    # With an elementwise predictor the equality is exact.
    head = analytic_head()
    g_cond = gaussian_cond([0.0, 1.0, 2.0], [1.0, 0.5, 2.0], 1)
    batch = head.sample(g_cond, steps=20, generator=[torch.Generator().manual_seed(s) for s in seeds])
    alone = head.sample(g_cond[2:], steps=20, generator=[torch.Generator().manual_seed(13)])
    assert torch.equal(batch[2:], alone)
    assert not torch.equal(batch[0], batch[1])


# --- progress and cancellation -------------------------------------------------------------------------------


def test_progress_reports_every_step():
    head, seen = analytic_head(), []
    head.sample(gaussian_cond([0.0], [1.0], 2), steps=20, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 20) for k in range(1, 21)]
    assert head.net.calls == 20


@pytest.mark.parametrize("cancel_at", [0, 1, 7])
def test_cancellation_stops_within_one_network_call(cancel_at: int):
    head, done = analytic_head(), [0]

    def progress(step: int, total: int) -> None:
        done[0] = step

    with pytest.raises(GenerationCancelled):
        head.sample(
            gaussian_cond([0.0], [1.0], 2),
            null_cond=gaussian_cond([0.0], [1.0], 1)[0],
            guidance_scale=2.0,
            steps=20,
            progress=progress,
            should_cancel=lambda: done[0] >= cancel_at,
        )
    assert cancel_at <= head.net.calls <= cancel_at + 1


# --- training ------------------------------------------------------------------------------------------------


def test_loss_vanishes_for_the_exact_predictor():
    """Delta data (s = 0): the exact ε is recoverable from x_t, so the loss is 0 iff q_sample and t agree."""
    head = analytic_head()
    target = torch.randn(6, 1, TINY.latent_dim)
    cond = torch.zeros(6, 4, TINY.hidden_dim)
    cond[:, 0, : TINY.latent_dim] = target[:, 0]
    loss = head.loss(target, cond, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-9


def test_cfg_dropout_reaches_the_null_condition():
    config = dataclasses.replace(TINY, diffusion=dataclasses.replace(D, uncond_prob=1.0))
    torch.manual_seed(0)
    head = DiffusionHead(config)
    null = nn.Parameter(torch.zeros(4, TINY.hidden_dim))
    cond = torch.randn(2, 4, TINY.hidden_dim, requires_grad=True)
    head.loss(torch.randn(2, 1, TINY.latent_dim), cond, torch.Generator().manual_seed(0), null_cond=null).backward()
    assert null.grad is not None and null.grad.abs().sum() > 0
    assert cond.grad is None or cond.grad.abs().sum() == 0  # every condition was dropped


def test_training_learns_a_condition_to_target_mapping():
    torch.manual_seed(0)
    head = DiffusionHead(TINY)
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(2, 4, TINY.hidden_dim, generator=gen)
    targets = torch.randn(2, 1, TINY.latent_dim, generator=gen)
    batch_cond, batch_target = cond.repeat(4, 1, 1), targets.repeat(4, 1, 1)  # × batch_mul 4 = 32 rows
    optimizer = torch.optim.Adam(head.parameters(), lr=2e-3)
    losses = []
    for _ in range(300):
        loss = head.loss(batch_target, batch_cond, generator=gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:30])
    head.eval()
    samples = head.sample(cond.repeat_interleave(8, 0), steps=50, generator=gen).view(2, 8, -1)
    separation = (targets[0] - targets[1]).norm()
    for i in range(2):
        own = (samples[i] - targets[i, 0]).norm(dim=-1)  # [8]
        other = (samples[i] - targets[1 - i, 0]).norm(dim=-1)
        assert own.mean() < 0.3 * separation and other.mean() > 0.7 * separation


@pytest.mark.parametrize("joint", [False, True])
def test_joint_latent_lets_one_token_see_the_others(joint: bool):
    """Several latent tokens: upstream's head denoises each token on its own row, so ε̂ for token 1 cannot depend on
    token 0's noisy value; with `joint_latent` the L·D values are one row and it does. Either way a sample is
    [N, L·D] once flattened and the training loss takes the tasks' [M, L, D] targets."""
    config = dataclasses.replace(
        TINY,
        vae=dataclasses.replace(TINY.vae, latent_size=3),
        diffusion=dataclasses.replace(TINY.diffusion, joint_latent=joint),
    )
    torch.manual_seed(0)
    head = DiffusionHead(config).eval()
    tokens, width = 3, config.latent_dim
    assert head.target_shape == ((1, tokens * width) if joint else (tokens, width))
    assert head.net.input_proj.in_features == head.net.final_layer.linear.out_features == head.target_shape[1]
    cond = torch.randn(2, *head.cond_shape)
    x = torch.randn(2, *head.target_shape)
    nudged = x.reshape(2, tokens, width).clone()
    nudged[:, 0] += 1.0  # move token 0 only
    t = torch.tensor([500, 500])
    with torch.no_grad():
        before = head.net(x, t, cond).reshape(2, tokens, width)
        after = head.net(nudged.reshape(x.shape), t, cond).reshape(2, tokens, width)
    moved = (after[:, 1:] - before[:, 1:]).abs().max().item()
    assert (moved > 1e-4) if joint else (moved == 0.0)
    sample = head.sample(cond, steps=5, generator=torch.Generator().manual_seed(1))
    assert sample.flatten(1).shape == (2, tokens * width)
    targets = torch.randn(2, tokens * width).reshape(2, *head.target_shape)
    assert torch.isfinite(head.loss(targets, cond, torch.Generator().manual_seed(2)))
