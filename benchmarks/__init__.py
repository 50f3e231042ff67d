"""``python -m benchmarks``: a thin wrapper over ``gradkit bench`` (the harness lives in ``gradkit.bench``).

Committed results are in benchmarks/results/; ``benchmarks/gpu.sh`` runs the GPU suite on an accelerator.
"""
