//! A Linux framebuffer device (`/dev/fbN`), its geometry read from sysfs, that shows the
//! operator's overlay.

use std::path::Path;

use image::RgbImage;

use crate::error::{Error, Result};

/// The largest framebuffer drawn (64 MiB: 8K at 32 bits per pixel fits).
const MAX_BYTES: usize = 64 << 20;

/// A Linux framebuffer device, its geometry read from sysfs (`/sys/class/graphics/fbN`).
pub struct Framebuffer {
    device: std::path::PathBuf,
    width: u32,
    height: u32,
    stride: usize,
    bits: u32,
}

impl Framebuffer {
    /// Opens `device` (e.g. `/dev/fb0`): 16-bit (RGB565) and 32-bit (XRGB8888) framebuffers.
    pub fn open(device: &Path) -> Result<Self> {
        let name = device.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let sys = Path::new("/sys/class/graphics").join(&name);
        let read = |attr: &str| {
            let p = sys.join(attr);
            std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
        };
        let bad = |what: &str| Error::bad_file(device, format!("framebuffer {what} not understood"));
        let size = read("virtual_size")?;
        let (w, h) = size.trim().split_once(',').ok_or_else(|| bad("virtual_size"))?;
        let width: u32 = w.parse().map_err(|_| bad("virtual_size"))?;
        let height: u32 = h.parse().map_err(|_| bad("virtual_size"))?;
        let bits: u32 = read("bits_per_pixel")?.trim().parse().map_err(|_| bad("bits_per_pixel"))?;
        let stride: usize = read("stride")?.trim().parse().map_err(|_| bad("stride"))?;
        if bits != 16 && bits != 32 {
            return Err(Error::bad_file(device, format!("{bits} bits per pixel; only 16 and 32 are drawn")));
        }
        // Every row is indexed by the stride: one shorter than a row of pixels would write past it.
        let row = width as usize * (bits / 8) as usize;
        if stride < row || width == 0 || height == 0 || stride.saturating_mul(height as usize) > MAX_BYTES {
            return Err(bad("geometry (stride, virtual_size)"));
        }
        Ok(Self { device: device.to_path_buf(), width, height, stride, bits })
    }

    /// Shows `image` in the top-left corner (clipped to the screen).
    pub fn show(&self, image: &RgbImage) -> Result<()> {
        let bytes_pp = (self.bits / 8) as usize;
        let mut buf = vec![0u8; self.stride * self.height as usize];
        for y in 0..image.height().min(self.height) {
            for x in 0..image.width().min(self.width) {
                let [r, g, b] = image.get_pixel(x, y).0;
                let at = y as usize * self.stride + x as usize * bytes_pp;
                if self.bits == 32 {
                    buf[at..at + 4].copy_from_slice(&[b, g, r, 0]);
                } else {
                    let v = ((r as u16 >> 3) << 11) | ((g as u16 >> 2) << 5) | (b as u16 >> 3);
                    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        std::fs::write(&self.device, &buf).map_err(|e| Error::io(&self.device, e))
    }
}
