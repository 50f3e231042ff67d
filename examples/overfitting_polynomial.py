"""The lecture's overfitting picture (chapter 1), trained with gradkit.

A few noisy points from a smooth curve; three models fitted by full-batch Adam on the squared error:
a straight line (underfits), a degree-11 polynomial that can pass through all 12 points (overfits),
and the same polynomial with an L2 penalty ``lambda * sum w^2`` (the lecture's fix). Train and test
errors are printed; with matplotlib installed the curves are drawn to ``overfitting_polynomial.png``.

    python examples/overfitting_polynomial.py [OUT.png]
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

import gradkit as gk

DEGREE, N_TRAIN, NOISE, STEPS = 11, 12, 0.25, 20_000


def truth(x):
    return np.sin(np.pi * x)


def features(x, degree):
    # Legendre polynomials P_0..P_degree: the same functions as the monomials 1, x, ..., x^degree,
    # but well conditioned on [-1, 1], so plain first-order optimization can reach the interpolant.
    return jnp.asarray(np.polynomial.legendre.legvander(x, degree), jnp.float32)


def fit(x, y, degree, l2):
    phi = features(x, degree)

    def loss(w):
        return jnp.mean((phi @ w - y) ** 2) + l2 * gk.regularizers.l2(w)

    tx = gk.adam(gk.schedules.cosine_annealing(0.05, total_steps=STEPS))

    def step(carry, _):
        w, state = carry
        grads = jax.grad(loss)(w)
        updates, state = tx.update(grads, state, w)
        return (gk.apply_updates(w, updates), state), None

    w = jnp.zeros(degree + 1)
    (w, _), _ = jax.lax.scan(step, (w, tx.init(w)), None, length=STEPS)
    return w


def main(out="overfitting_polynomial.png"):
    """Fit the three models, print their errors, draw the picture; returns ``{name: (train_mse, test_mse)}``."""
    rng = np.random.default_rng(0)
    x_train = np.sort(rng.uniform(-1, 1, N_TRAIN))
    y_train = jnp.asarray(truth(x_train) + NOISE * rng.normal(size=N_TRAIN), jnp.float32)
    x_test = rng.uniform(-1, 1, 500)
    y_test = truth(x_test) + NOISE * rng.normal(size=500)
    models = {
        "straight line": (1, 0.0),
        f"degree {DEGREE}": (DEGREE, 0.0),
        f"degree {DEGREE} + L2 (1e-2)": (DEGREE, 1e-2),
    }

    print(f"{N_TRAIN} noisy points (noise std {NOISE}, so the best possible mean squared error is ~{NOISE**2:.3f})")
    print(f"{'model':>24}  {'train MSE':>9}  {'test MSE':>9}")
    fitted, errors = {}, {}
    for name, (degree, l2) in models.items():
        w = fit(x_train, y_train, degree, l2)
        fitted[name] = (degree, w)
        train = float(jnp.mean((features(x_train, degree) @ w - y_train) ** 2))
        test = float(np.mean((np.asarray(features(x_test, degree) @ w) - y_test) ** 2))
        errors[name] = (train, test)
        print(f"{name:>24}  {train:9.4f}  {test:9.4f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib to draw the picture)")
        return errors
    # One panel per model, so each fit is seen against the same points and the true curve. Colours are
    # those of gradkit's figures (Okabe-Ito, colour-blind safe): fit blue, truth black, points orange.
    plt.rcParams.update({"font.size": 11, "axes.titlesize": 11})
    grid = np.linspace(-1, 1, 400)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), sharey=True, layout="constrained")
    for ax, (name, (degree, w)) in zip(axes, fitted.items()):
        train, test = errors[name]
        ax.plot(grid, truth(grid), ":", color="black", lw=1.5, label="true curve sin(pi x)")
        ax.plot(grid, np.asarray(features(grid, degree) @ w), color="#0072B2", lw=2.2, label="fitted model")
        ax.plot(x_train, y_train, "o", color="#E69F00", mec="black", ms=7, label=f"{N_TRAIN} training points")
        ax.set_ylim(-2.5, 2.5)
        ax.set_xlabel("x")
        ax.set_title(f"{name}\ntrain MSE {train:.3f}, test MSE {test:.3g}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(
        f"Overfitting (lecture 3, chapter 1): {N_TRAIN} noisy points, noise floor MSE {NOISE**2:.3f}; "
        "fit the signal, not the noise"
    )
    fig.savefig(out, dpi=100)
    print(f"picture: {out}")
    return errors


if __name__ == "__main__":
    main(*sys.argv[1:])
