"""What ``gradkit bench`` runs: jitted optimizer steps against optax and torch, as a fraction of the roofline.

    gradkit bench --suite                 # the built-in cases, packed rows, compile time vs leaves, training
    gradkit bench --quick                 # the same at tiny sizes (CI, under a minute or two on CPU)
    gradkit bench --optimizer "adamw(learning_rate=1e-3)" --leaves 3000 --leaf-size 100 --packed

An optimizer step is memory-bound: AdamW in float32 reads params, grads, m, v and writes params, m, v,
28 bytes per parameter, so its floor is ``28 * N / bandwidth``. Each case reports its step time, the
effective bandwidth ``bytes / time`` and that as a percentage of a roofline measured in the same run
(``x = x + a*y`` on donated buffers of the same size, timed in the same rounds as the peers). optax and
torch are optional peers, used when installed.

Where things live:
    gradkit.bench.cases      the parameter trees and the optimizers' hyperparameters
    gradkit.bench.spec       "adamw(learning_rate=1e-3)" -> a gradkit optimizer, parsed without eval
    gradkit.bench.peers      gradkit (tree and packed), optax and torch steppers doing the same work
    gradkit.bench.roofline   bytes per parameter, the measured axpy roofline, spec-sheet bandwidths
    gradkit.bench.timing     alternating rounds of repeats, medians, compile time, what XLA made of a step
    gradkit.bench.training   end-to-end steps: loss + grad + AdamW of a deep MLP and a GPT-2-shaped model
    gradkit.bench.report     the JSON record and the markdown tables
    gradkit.bench.run        the command line and the order of the run
"""
