//! The feature map one level of the backbone gives for one image, as the stages after the
//! backbone take it. Apart from [`crate::backbone`] so that it depends on nothing (the search
//! module is also built on its own for aarch64 with it: `tests/arm64/search-kernel.sh`).

/// One level's feature map of one image, laid out patch-major: H·W rows of C values.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMap {
    /// Channels C.
    pub channels: usize,
    /// Grid height H.
    pub height: usize,
    /// Grid width W.
    pub width: usize,
    /// H·W rows (row-major patches) of C values.
    pub data: Vec<f32>,
}

impl FeatureMap {
    /// A zeroed map.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width, data: vec![0.0; channels * height * width] }
    }

    /// Patches H·W.
    pub fn patches(&self) -> usize {
        self.height * self.width
    }

    /// Fills this map from a C×H×W (channel-major) slice.
    pub fn fill_from_chw(&mut self, chw: &[f32]) {
        let n = self.patches();
        for (c, plane) in chw.chunks_exact(n).enumerate() {
            for (p, v) in plane.iter().enumerate() {
                self.data[p * self.channels + c] = *v;
            }
        }
    }

    /// Writes this map as C×H×W (channel-major) into `out`.
    pub fn write_chw(&self, out: &mut [f32]) {
        let n = self.patches();
        for (p, row) in self.data.chunks_exact(self.channels).enumerate() {
            for (c, v) in row.iter().enumerate() {
                out[c * n + p] = *v;
            }
        }
    }
}
