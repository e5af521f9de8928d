"""The C checkpoint test's fixture, made without jigsaw: a safetensors file (written by the safetensors
package) of known values, w[i, j] = i * 1000 + j (float32, 40 x 1024) and b[j] = -j (float64, 1024), and the
partition that `jigsaw-ckpt import` cuts them by on a 2x2 mesh.
usage: make_ckpt_fixture.py DIR  (writes DIR/model.safetensors and DIR/partition.json)"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

d = Path(sys.argv[1])
d.mkdir(parents=True, exist_ok=True)
i, j = np.meshgrid(np.arange(40), np.arange(1024), indexing="ij")
save_file({"w": (i * 1000 + j).astype("float32"), "b": -np.arange(1024, dtype="float64")}, str(d / "model.safetensors"))
(d / "partition.json").write_text(json.dumps({"w": ["domain", "tensor"], "b": ["tensor"]}))
