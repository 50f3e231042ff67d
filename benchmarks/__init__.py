"""gradkit's benchmark suite: jitted optimizer steps against optax and torch, as a fraction of the roofline.

    python -m benchmarks            # full run on the default JAX backend (make bench)
    python -m benchmarks --quick    # smoke run, under a minute on CPU

An optimizer step is memory-bound: AdamW in float32 reads params, grads, m, v and writes params, m, v,
28 bytes per parameter, so its floor is ``28 * N / bandwidth``. Each case reports its step time, the
effective bandwidth ``bytes / time`` and that as a percentage of a roofline measured in the same run
(``x = x + a*y`` on donated buffers of the same size, timed in the same rounds as the peers).

Where things live:
    benchmarks.cases      the parameter trees and the optimizers' hyperparameters
    benchmarks.peers      gradkit, optax and torch steppers doing the same work
    benchmarks.roofline   bytes per parameter, the measured axpy roofline, spec-sheet bandwidths
    benchmarks.timing     alternating rounds of repeats, medians, compile time, what XLA made of a step
    benchmarks.training   the end-to-end case: loss + grad + AdamW of a deep MLP
    benchmarks.report     the JSON record and the markdown tables
    benchmarks.run        the command line and the order of the run
"""
