"""mmengine integration (in mmlk.registry): hooks, optimizer constructors and wrappers, and
the sparsity-following EMA model."""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .sparse_ema import SparseEMA  # noqa: F401
