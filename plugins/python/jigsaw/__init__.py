"""jigsaw: tile-aligned weather data for Jigsaw-parallel training.

    loader = jigsaw.Loader("tiles.zarr", rank=0, batch_size=4, lead_steps=1)
    for batch in loader:          # one epoch of NumPy arrays [batch, 1 + lead, channels, lat, lon]
        ...
    state = loader.state()        # {'epoch': e, 'batch': b}; loader.restore(state) resumes exactly there

Batches are normalised by default, each channel as (value - mean) / std with the store's statistics, as
jigsaw-train feeds its model; Loader(..., normalize=False) gives the stored values in physical units.

`jigsaw.torch` wraps the loader as a torch.utils.data.IterableDataset.
"""
from ._jigsaw import Loader as _Loader

__all__ = ["Loader"]


class Loader(_Loader):
    """Iterating yields the batches of the current epoch (from the current state) as NumPy arrays that own
    their memory; next_batch() returns the batch with its times, epoch and index."""

    def __iter__(self):
        epoch = self.state()["epoch"]
        while self.state()["epoch"] == epoch:
            yield self.next_batch()["data"]
