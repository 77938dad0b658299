//! What the integration tests that write ONNX graphs with tract_onnx::pb share.

use tract_onnx::pb;

/// A float tensor type [1, c, H, W] with symbolic H and W.
pub fn float_nchw(c: usize) -> pb::TypeProto {
    use pb::tensor_shape_proto::{dimension::Value as Dim, Dimension};
    let dim = |v: Dim| Dimension { value: Some(v), ..Default::default() };
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: 1,
            shape: Some(pb::TensorShapeProto {
                dim: vec![
                    dim(Dim::DimValue(1)),
                    dim(Dim::DimValue(c as i64)),
                    dim(Dim::DimParam("h".into())),
                    dim(Dim::DimParam("w".into())),
                ],
            }),
        })),
        ..Default::default()
    }
}
