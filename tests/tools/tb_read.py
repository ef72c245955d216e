"""Reads a TensorBoard log directory with the tensorboard package's own EventAccumulator; prints one JSON
object: scalars {tag: [[step, value]]}, images {tag: [[step, width, height, png hex]]}, texts {tag: [[step, text]]}."""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util

acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
acc.Reload()
tags = acc.Tags()
out = {
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "images": {t: [[e.step, e.width, e.height, e.encoded_image_string.hex()] for e in acc.Images(t)]
               for t in tags["images"]},
    "texts": {},
}
for t in tags["tensors"]:
    if acc.SummaryMetadata(t).plugin_data.plugin_name != "text":
        continue
    out["texts"][t] = [[e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")]
                       for e in acc.Tensors(t)]
print(json.dumps(out))
