"""Learning-rate schedules, as nnabla's ``utils.learning_rate_scheduler``.

Each scheduler maps the iteration (from 0) to a learning rate; pass it to
``solver.set_learning_rate(scheduler.get_learning_rate(i))``.
"""

from __future__ import annotations

import math


class BaseLearningRateScheduler:
    """Base class: `get_learning_rate(iter)` gives the rate for iteration `iter`."""

    def get_learning_rate(self, iter):  # noqa: A002 - nnabla's argument name
        raise NotImplementedError()


class PolynomialScheduler(BaseLearningRateScheduler):
    """init_lr * (1 - iter / max_iter) ** power."""

    def __init__(self, init_lr, max_iter, power):
        self.init_lr = init_lr
        self.max_iter = max_iter
        self.power = power

    def get_learning_rate(self, iter):  # noqa: A002
        return self.init_lr * ((1.0 - iter * 1.0 / self.max_iter) ** self.power)


class CosineScheduler(BaseLearningRateScheduler):
    """init_lr * (cos(pi * iter / max_iter) + 1) / 2."""

    def __init__(self, init_lr, max_iter):
        self.init_lr = init_lr
        self.max_iter = max_iter

    def get_learning_rate(self, iter):  # noqa: A002
        return self.init_lr * ((math.cos(iter * 1.0 / self.max_iter * math.pi) + 1.0) * 0.5)


class ExponentialScheduler(BaseLearningRateScheduler):
    """init_lr * gamma ** (iter // iter_interval)."""

    def __init__(self, init_lr, gamma, iter_interval=1):
        self.init_lr = init_lr
        self.gamma = gamma
        self.iter_interval = iter_interval

    def get_learning_rate(self, iter):  # noqa: A002
        return self.init_lr * (self.gamma ** (iter // self.iter_interval))


class StepScheduler(BaseLearningRateScheduler):
    """init_lr multiplied by gamma once for every step in `iter_steps` already reached."""

    def __init__(self, init_lr, gamma, iter_steps):
        self.init_lr = init_lr
        self.gamma = gamma
        self.iter_steps = iter_steps

    def get_learning_rate(self, iter):  # noqa: A002
        lr = self.init_lr
        for iter_step in self.iter_steps:
            if iter >= iter_step:
                lr *= self.gamma
        return lr


class LinearWarmupScheduler(BaseLearningRateScheduler):
    """`scheduler`'s rate, scaled by (iter + 1) / warmup_iter for the first iterations."""

    def __init__(self, scheduler, warmup_iter):
        self.scheduler = scheduler
        self.warmup_iter = warmup_iter

    def get_learning_rate(self, iter):  # noqa: A002
        lr = self.scheduler.get_learning_rate(iter)
        if iter < self.warmup_iter:
            lr *= (iter + 1) * 1.0 / self.warmup_iter
        return lr
