"""Training machinery: optimizer constructors, sparse training, hooks (in mmlk.registry)."""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .sparsity import *  # noqa: F401,F403
