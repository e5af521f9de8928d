"""PyTorch integration: an IterableDataset over a jigsaw Loader.

Each item is one batch as a torch tensor [batch, 1 + lead_steps, channels, lat, lon] (float32, or bfloat16
when the loader was opened with dtype="bfloat16"), shared with the loader's buffer without a copy. Use it
with DataLoader(dataset, batch_size=None): batching and prefetching already happen in jigsaw.
"""
import torch

from . import Loader


class TileDataset(torch.utils.data.IterableDataset):
    def __init__(self, url, **loader_options):
        super().__init__()
        self.url = url
        self.options = loader_options
        self.loader = None

    def _open(self):
        if self.loader is None:
            self.loader = Loader(self.url, **self.options)
        return self.loader

    def __len__(self):
        return self._open().batches_per_epoch

    def __iter__(self):
        loader = self._open()
        bf16 = self.options.get("dtype") == "bfloat16"
        for array in loader:
            if bf16:  # bfloat16 bits arrive as uint16, which torch.from_numpy refuses before torch 2.3: as int16
                yield torch.from_numpy(array.view("int16")).view(torch.bfloat16)
            else:
                yield torch.from_numpy(array)

    @property
    def static_tile(self):
        """This rank's time-independent fields [static channels, lat, lon] as a float32 tensor (empty along
        the first dimension for a store without them): extra input channels, the same for every sample."""
        return torch.from_numpy(self._open().static_tile)

    def state_dict(self):
        return self._open().state()

    def load_state_dict(self, state):
        self._open().restore(state)
