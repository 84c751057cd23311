"""Market and trading data of the bot. Re-exports the storage layer's public face.

The storage candle is also exported as ``StorageOHLCVBar``, since the market-data fetcher has an
``OHLCVBar`` of its own.
"""

from iftb.data.storage import *  # noqa: F403 - the storage package's __all__ is the public face
from iftb.data.storage import OHLCVBar as StorageOHLCVBar
from iftb.data.storage import __all__ as _storage_all

__all__ = [*_storage_all, "StorageOHLCVBar"]
