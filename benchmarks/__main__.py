"""``python -m benchmarks`` (``make bench``): the same as ``gradkit bench``, whose harness is ``gradkit.bench``."""

import os
import sys

# On a GPU, JAX would otherwise take 75% of the memory up front: leave room for the torch peers and make the
# allocator's peak reflect what the steps use. Set before jax is imported; an explicit setting wins.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from gradkit.bench.run import main

sys.exit(main())
