"""Where onnxruntime's time goes in the default backbone: onnxruntime's own profiler over 40 runs at
224², one thread, summed per kind of convolution (1x1, depthwise, the stem; each with the ReLU6
onnxruntime fuses into it). The counterpart of edge-ad-core's `backbone_profile` example for tract;
README, *Speed*, sets the two side by side. A measuring tool, not part of the box.

Usage: python3 benches/ort_backbone_profile.py [models/effnet_lite0_feat.onnx]
Needs onnx and onnxruntime (benches/requirements.txt).
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

RUNS = 40


def kinds_by_tensor(path):
    """Tensor name -> '1x1', 'depthwise' or 'stem' for every Conv's output and for the output of
    a Clip (ReLU6) right after a Conv; and the graph's output names. onnxruntime names a node it
    has fused (a Conv with its ReLU6, in its NCHWc layout) after the tensor it ends in."""
    model = onnx.load(path)
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    kinds = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            kernel = dims[node.input[1]]
            kinds[node.output[0]] = "depthwise" if group > 1 else ("1x1" if kernel[2] == 1 else "stem")
        elif node.op_type == "Clip" and node.input[0] in kinds:
            kinds[node.output[0]] = kinds[node.input[0]]
    return kinds, [o.name for o in model.graph.output]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "models/effnet_lite0_feat.onnx"
    kinds, outputs = kinds_by_tensor(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    for _ in range(RUNS):
        session.run(outputs, {session.get_inputs()[0].name: image})
    events = json.load(open(session.end_profiling()))
    per_kind = collections.defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        tensor = e["name"][: -len("_kernel_time")].removesuffix("_nchwc")
        kind = kinds.get(tensor) or e["args"].get("op_name", "other")
        per_kind[kind] += e["dur"] / 1000 / RUNS
    print(f"onnxruntime {ort.__version__}, {path}, 224², one thread, ms per frame (mean of {RUNS})")
    for kind, ms in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        print(f"{ms:8.2f} ms  {kind}")
    print(f"{sum(per_kind.values()):8.2f} ms  whole backbone")


if __name__ == "__main__":
    main()
