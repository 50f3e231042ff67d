"""Lecture 3, chapter 3: softmax, cross-entropy, numerical stability (and lecture 2's SVM loss for comparison).

python examples/ch03_softmax.py
"""

import jax.numpy as jnp

import gradkit as gk

L = gk.losses
scores = jnp.array([3.2, 1.3, 2.2])
exps = jnp.exp(scores)
print("scores:                   ", *(f"{float(s):.2f}" for s in scores))
print("exponentials:             ", *(f"{float(e):.2f}" for e in exps))
print(f"sum:                       {float(exps.sum()):.2f}")
# The lecture prints [0.659, 0.099, 0.243], dividing the rounded 9.03 by 37.23; exactly it is 0.2424.
print("probabilities:            ", *(f"{float(p):.4f}" for p in L.softmax(scores)))
print(f"cross-entropy, class 0:    {float(L.softmax_cross_entropy(scores, jnp.array(0))):.3f}")

# -log P(correct): 0 when P = 1, 4.6 when P = 0.01.
for p in (1.0, 0.01):
    logits = jnp.log(jnp.array([p, 1 - p])) if p < 1 else jnp.array([0.0, -jnp.inf])
    print(f"{f'cross-entropy at p={p}:':<27}{float(L.softmax_cross_entropy(logits, jnp.array(0))) + 0.0:.3f}")

huge = jnp.array([1000.0, 999.0, 998.0])
print("naive softmax at 1000:    ", *(f"{float(p):.3f}" for p in jnp.exp(huge) / jnp.exp(huge).sum()))
print("stable softmax at 1000:   ", *(f"{float(p):.3f}" for p in L.softmax(huge)))

# Lecture 2's cat example: the SVM loss stops caring past the margin, cross-entropy never does.
cat = jnp.array([3.2, 5.1, -1.7])
print(f"hinge loss, cat scores:    {float(L.multiclass_hinge(cat, jnp.array(0))):.2f}")
confident = jnp.array([10.0, 1.0, 0.0])
print(f"hinge, confident correct:  {float(L.multiclass_hinge(confident, jnp.array(0))):.3f}")
print(f"CE, confident correct:     {float(L.softmax_cross_entropy(confident, jnp.array(0))):.3g}")
