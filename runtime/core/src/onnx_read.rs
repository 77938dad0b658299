//! Reading an ONNX model for the crate's own executors ([`crate::conv_net`],
//! [`crate::projector_net`]): the model's protobuf through tract-onnx's parser, its version of
//! the default operator set, and its initializers as tensors.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The model in `onnx` and its version of the default ONNX operator set (1 when it names none).
/// `Err` says what is wrong with the bytes.
pub(crate) fn model(onnx: &[u8]) -> Result<(pb::ModelProto, i64), String> {
    use tract_onnx::tract_hir::prelude::Framework;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(onnx))
        .map_err(|e| format!("not an ONNX model: {e}"))?;
    let opset =
        proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version);
    Ok((proto, opset))
}

/// The graph's initializers by name.
pub(crate) fn constants(graph: &pb::GraphProto) -> Result<HashMap<&str, Tensor>, String> {
    let onnx = tract_onnx::onnx();
    let mut constants = HashMap::new();
    for init in &graph.initializer {
        let t = tract_onnx::tensor::load_tensor(&*onnx.provider, init, None)
            .map_err(|e| format!("initializer {}: {e}", init.name))?;
        constants.insert(init.name.as_str(), t);
    }
    Ok(constants)
}
