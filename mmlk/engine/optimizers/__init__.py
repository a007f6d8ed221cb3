from .amp_fallback import AmpOptimWrapperWithCPUFallback
from .layer_decay import LayerDecayOptimWrapperConstructor

__all__ = ['AmpOptimWrapperWithCPUFallback', 'LayerDecayOptimWrapperConstructor']
