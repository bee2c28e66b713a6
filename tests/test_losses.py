"""The GANimation objective: values and signs of every term (a flipped sign must fail here)."""
from __future__ import annotations

import torch

from gan_anim.training.losses import (
    LossWeights,
    critic_loss,
    generator_loss,
    gradient_penalty,
    total_variation,
)


class LinearCritic(torch.nn.Module):
    """D_I(x) = <w, x> (one score per image), D_y(x) = a fixed AU guess."""

    def __init__(self, w: torch.Tensor, aus: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.guess = aus

    def forward(self, x):
        score = (x * self.w).flatten(1).sum(1).view(-1, 1, 1, 1)
        return score, self.guess.expand(x.shape[0], -1)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # grad D = w everywhere, so the penalty is (||w|| - 1)^2 whatever the interpolates
    w = torch.zeros(3, 4, 4)
    w[0, 0, 0] = 3.0
    critic = LinearCritic(w, torch.zeros(17))
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    gp = gradient_penalty(critic, real, fake, torch.rand(5, 1, 1, 1))
    torch.testing.assert_close(gp, torch.tensor(4.0))
    critic.w.data[0, 0, 0] = 1.0
    assert gradient_penalty(critic, real, fake, torch.rand(5, 1, 1, 1)) < 1e-10


def test_critic_loss_rewards_scoring_real_above_fake():
    w = LossWeights(gp=10.0, au=160.0)
    real, fake = torch.ones(4, 3, 2, 2), -torch.ones(4, 3, 2, 2)
    y = torch.full((4, 17), 0.3)
    good = LinearCritic(torch.ones(3, 2, 2), torch.full((17,), 0.3))    # real +12, fake -12
    bad = LinearCritic(-torch.ones(3, 2, 2), torch.full((17,), 0.3))
    loss_good, logs = critic_loss(good, real, fake, y, w)
    loss_bad, _ = critic_loss(bad, real, fake, y, w)
    torch.testing.assert_close(loss_good, torch.tensor(-24.0))  # E[D(fake)] - E[D(real)], AU term 0
    assert loss_good < loss_bad and logs["d_real"] > logs["d_fake"]
    # the penalty is added (weight 10 x its every-k scale): ||w|| = sqrt(12), so gp = (sqrt(12) - 1)^2
    with_gp, logs = critic_loss(good, real, fake, y, w, alpha=torch.rand(4, 1, 1, 1), gp_scale=4.0)
    torch.testing.assert_close(logs["gp"], torch.tensor((12 ** 0.5 - 1) ** 2))
    torch.testing.assert_close(with_gp - loss_good, 40.0 * logs["gp"])
    # the AU term: the critic learns the real images' AUs (MSE x 160)
    off = LinearCritic(torch.ones(3, 2, 2), torch.full((17,), 0.5))
    loss_off, logs = critic_loss(off, real, fake, y, w)
    torch.testing.assert_close(logs["d_au"], torch.tensor(0.04))
    torch.testing.assert_close(loss_off - loss_good, torch.tensor(160 * 0.04))


class Identity(torch.nn.Module):
    """A generator that keeps its input (A = 1): the cycle is exact, the edit is nothing."""

    motion = None

    def forward(self, x, y):
        b, _, h, w = x.shape
        return torch.zeros(b, 3, h, w), torch.ones(b, 1, h, w)


def test_generator_loss_terms_and_signs():
    w = LossWeights(adversarial=1.0, au=160.0, cycle=10.0, attention=0.1, attention_tv=0.0)
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    target = torch.full((2, 17), 0.2)
    critic = LinearCritic(torch.ones(3, 4, 4), torch.full((17,), 0.2))
    loss, logs = generator_loss(Identity(), critic, x, torch.zeros(2, 17), target, w)
    # the generator maximises the critic's score of its output: g_adv = -E[D(fake)]
    torch.testing.assert_close(logs["g_adv"], -x.flatten(1).sum(1).mean())
    assert logs["cycle"] == 0 and logs["g_au"] == 0
    # attention: mean A of both passes, weighted 0.1; everything else is 0 here
    torch.testing.assert_close(loss, logs["g_adv"] + 0.1 * 2.0)


def test_total_variation_counts_squared_neighbour_differences():
    a = torch.zeros(1, 1, 3, 3)
    a[0, 0, 1, 1] = 1.0
    assert total_variation(a) == 4.0
    assert total_variation(torch.ones(2, 1, 5, 5)) == 0.0
