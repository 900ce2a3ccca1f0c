"""pyvene's path ``pyvene.models.layers``, as thin re-exports (the table: vene._compat_paths)."""

from vene._compat_paths import exports as _exports

__getattr__, __dir__, __all__ = _exports(__name__)
