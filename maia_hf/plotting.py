"""The one place that picks matplotlib's backend: maia only draws into files, never onto a screen.

Example:

```python
>>> from maia_hf.plotting import pyplot
>>> plt = pyplot()
>>> plt.get_backend().lower()
'agg'

```
"""

from __future__ import annotations

import functools

__all__ = ["pyplot"]


@functools.cache
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, which needs no display (servers, CI, worker processes).

    matplotlib is imported on the first call, so modules that draw can import this one for free.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
