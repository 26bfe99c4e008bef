"""Noise is reproducible from its seed."""

from __future__ import annotations

import pytest
from acq.devices.sim import GaussianDetector, Motor, Noise


async def sequence(det: GaussianDetector, n: int = 20) -> list[float]:
    values = []
    for _ in range(n):
        await det.trigger()
        values.append((await det.read())[det.name]["value"])
    return values


async def noisy_detector(noise: Noise, seed: int | None) -> GaussianDetector:
    x = Motor("x", instant=True, initial_value=0.3)
    det = GaussianDetector(x, Imax=1000.0, noise=noise, noise_multiplier=5.0, seed=seed, name="d")
    await x.connect()
    await det.connect()
    return det


@pytest.mark.parametrize("noise", [Noise.POISSON, Noise.UNIFORM])
async def test_same_seed_gives_the_same_sequence(noise: Noise) -> None:
    first = await sequence(await noisy_detector(noise, seed=7))
    second = await sequence(await noisy_detector(noise, seed=7))
    assert first == second
    assert len(set(first)) > 1  # it is noisy, not constant


@pytest.mark.parametrize("noise", [Noise.POISSON, Noise.UNIFORM])
async def test_different_seeds_give_different_sequences(noise: Noise) -> None:
    first = await sequence(await noisy_detector(noise, seed=1))
    second = await sequence(await noisy_detector(noise, seed=2))
    assert first != second


async def test_reseed_replays_the_sequence() -> None:
    det = await noisy_detector(Noise.POISSON, seed=3)
    first = await sequence(det, 5)
    det.reseed(3)
    assert await sequence(det, 5) == first


async def test_poisson_noise_gives_counts_around_the_model_value() -> None:
    det = await noisy_detector(Noise.POISSON, seed=11)
    values = await sequence(det, 50)
    assert all(v == int(v) and v >= 0 for v in values)
    expected = 1000.0 * 2.718281828 ** (-(0.3**2) / 2)
    mean = sum(values) / len(values)
    assert abs(mean - expected) < 5 * (expected / len(values)) ** 0.5


async def test_uniform_noise_stays_within_the_multiplier() -> None:
    det = await noisy_detector(Noise.UNIFORM, seed=5)
    await det.noise_multiplier.set(0.5)
    exact = 1000.0 * 2.718281828459045 ** (-(0.3**2) / 2)
    assert all(abs(v - exact) <= 0.5 for v in await sequence(det, 30))


async def test_no_noise_is_exact_and_switchable_at_run_time() -> None:
    det = await noisy_detector(Noise.NONE, seed=None)
    assert len(set(await sequence(det, 5))) == 1
    await det.noise.set(Noise.UNIFORM)
    assert len(set(await sequence(det, 5))) > 1
