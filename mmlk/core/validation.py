"""Option checks with messages that say what was given and what is accepted."""
import math
import numbers
from typing import List, Optional, Sequence, Tuple, Union

__all__ = ['as_patterns', 'check_int_sequence', 'check_kernel_pair', 'check_odd_kernel',
           'check_range']


def as_patterns(value: Union[None, str, Sequence[str]], name: str) -> List[str]:
    """A list of regular expressions from None, one string (one pattern, never iterated
    character by character) or a list/tuple of strings; anything else is a TypeError."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value):
        return list(value)
    raise TypeError(f'{name} must be a regular expression or a list of them, got {value!r} '
                    f'({type(value).__name__})')


def check_range(value, name: str, low: Optional[float] = None, high: Optional[float] = None,
                low_open: bool = False, high_open: bool = False, integer: bool = False):
    """``value`` if it is a number (an int when ``integer``) inside the interval, else a
    TypeError/ValueError naming the accepted interval."""
    kind = 'an integer' if integer else 'a number'
    interval = (('(' if low_open else '[') + ('-inf' if low is None else f'{low}') + ', '
                + ('inf' if high is None else f'{high}') + (')' if high_open else ']'))
    valid_type = isinstance(value, numbers.Integral if integer else numbers.Real) and \
        not isinstance(value, bool)
    if not valid_type:
        raise TypeError(f'{name} must be {kind} in {interval}, got {value!r} '
                        f'({type(value).__name__})')
    if not math.isfinite(value) and not (value == math.inf and high is None) \
            and not (value == -math.inf and low is None):
        # NaN compares False with every bound, so it would pass the interval test below.
        raise ValueError(f'{name} must be in {interval}, got {value}')
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise ValueError(f'{name} must be in {interval}, got {value}')
    return value


def check_int_sequence(value, name: str, length: Optional[int] = None) -> List[int]:
    """A list of ints from a list/tuple of ints (of ``length`` entries when given)."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        what = f'a list of {length} integers' if length else 'a list of integers'
        raise TypeError(f'{name} must be {what}, got {value!r} ({type(value).__name__})')
    if length is not None and len(value) != length:
        raise ValueError(f'{name} must have {length} entries, got {len(value)}: {list(value)}')
    return [int(v) for v in value]


def _check_odd_side(value, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0 \
            or value % 2 == 0:
        raise ValueError(f'{name} must be an odd positive int (e.g. 51, 13, 5), got {value!r}')
    return int(value)


def check_odd_kernel(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """``(kh, kw)`` from an int or a pair of odd positive ints, else a ValueError. Odd sides
    make "same" padding exact and centred, which every large-kernel op, its decomposition and
    its re-parameterisation rely on."""
    sides = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(sides) != 2:
        raise ValueError(f'{name} must be an int or (kh, kw), got {value!r}')
    return _check_odd_side(sides[0], name), _check_odd_side(sides[1], name)


def check_kernel_pair(long_side: int, short_side: int, long_name: str = 'large kernel',
                      short_name: str = 'small kernel', allow_equal: bool = False) -> None:
    """Both sides odd positive ints and ``short_side < long_side`` (``<=`` with
    ``allow_equal``), else a ValueError naming the accepted values."""
    _check_odd_side(long_side, long_name)
    _check_odd_side(short_side, short_name)
    if short_side > long_side or (short_side == long_side and not allow_equal):
        relation = 'cannot exceed' if allow_equal else 'must be smaller than'
        raise ValueError(f'the {short_name} ({short_side}) {relation} the {long_name} '
                         f'({long_side}); e.g. SLaK uses 51 with 5, RepLKNet 31 with 5')
