"""Training machinery: optimizer constructors, wrappers and hooks (registered in mmlk.registry)."""
from .optimizers import *  # noqa: F401,F403
