//! A V4L2 camera as a [`FrameSource`]: format negotiation (YUYV or MJPG), memory-mapped
//! streaming on a capture thread, a frame timeout, and reconnection when the device disappears
//! and returns. A frame asked for is the first one captured after the asking, so a trigger never
//! gets a stale frame from the driver's queue.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::config::{CameraConfig, PixelFormat};
use crate::error::{Error, Result};
use edge_ad_core::source::{Frame, FrameSource, SourceHealth, MIN_IMAGE_SIDE};

/// The format the driver agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per line (YUYV).
    pub stride: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

struct Slot {
    raw: Vec<u8>,
    format: Option<Negotiated>,
    sequence: u64,
    lost: Option<String>,
    stop: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    changed: Condvar,
}

/// A V4L2 capture device streaming on its own thread.
pub struct Camera {
    device: PathBuf,
    timeout: Duration,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Camera {
    /// Opens `config.device` and starts streaming. The first open must succeed (a clear error
    /// names the device); later losses are retried every `reconnect_ms`.
    pub fn open(config: &CameraConfig) -> Result<Self> {
        let first = Session::open(config)?;
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                raw: Vec::new(),
                format: Some(first.format),
                sequence: 0,
                lost: None,
                stop: false,
            }),
            changed: Condvar::new(),
        });
        tracing::info!(device = %config.device.display(), format = ?first.format, "camera streaming");
        let thread = {
            let shared = shared.clone();
            let owned = config.clone();
            std::thread::Builder::new()
                .name("camera".into())
                .spawn(move || capture_loop(owned, first, &shared))
                .map_err(|source| Error::Thread { name: format!("camera {}", config.device.display()), source })?
        };
        Ok(Self {
            device: config.device.clone(),
            timeout: Duration::from_millis(config.frame_timeout_ms),
            shared,
            thread: Some(thread),
        })
    }

    /// The format in use (`None` while the camera is lost).
    pub fn format(&self) -> Option<Negotiated> {
        self.shared.slot.lock().map(|s| s.format).unwrap_or(None)
    }

    /// The first frame captured after this call, converted to RGB.
    pub fn grab(&mut self) -> edge_ad_core::Result<Frame> {
        let name = format!("camera {}", self.device.display());
        let lost = |why: &str| edge_ad_core::Error::Source { name: name.clone(), reason: why.to_string() };
        let started = Instant::now();
        let mut slot = self.shared.slot.lock().map_err(|_| lost("capture thread failed"))?;
        let after = slot.sequence;
        loop {
            if let Some(why) = &slot.lost {
                return Err(lost(why));
            }
            if slot.sequence > after {
                break;
            }
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(lost(&format!("no frame within {} ms", self.timeout.as_millis())));
            }
            slot = self.shared.changed.wait_timeout(slot, left).map_err(|_| lost("capture thread failed"))?.0;
        }
        let format = slot.format.ok_or_else(|| lost("no format"))?;
        let image = decode(&slot.raw, &format).map_err(|e| lost(&e))?;
        Ok(Frame { name: format!("frame-{:08}", slot.sequence), path: None, image })
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self) -> Option<edge_ad_core::Result<Frame>> {
        Some(self.grab())
    }

    fn remaining(&self) -> Option<usize> {
        None
    }

    fn health(&self) -> SourceHealth {
        match self.shared.slot.lock() {
            Ok(s) => match &s.lost {
                Some(why) => SourceHealth::Lost(why.clone()),
                None => SourceHealth::Ok,
            },
            Err(_) => SourceHealth::Lost(format!("camera {}: capture thread failed", self.device.display())),
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.slot.lock() {
            s.stop = true;
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An open device with its negotiated format.
struct Session {
    device: v4l::Device,
    format: Negotiated,
}

impl Session {
    fn open(config: &CameraConfig) -> Result<Self> {
        use v4l::video::Capture;
        let path = &config.device;
        let fail = |reason: String| Error::Camera { device: path.clone(), reason };
        let err = |what: &str, e: std::io::Error| fail(format!("{what}: {e}"));
        let device = v4l::Device::with_path(path).map_err(|e| err("cannot open", e))?;
        let caps = device.query_caps().map_err(|e| err("not a V4L2 device", e))?;
        if !caps.capabilities.contains(v4l::capability::Flags::VIDEO_CAPTURE) {
            return Err(fail(format!("{} cannot capture video", caps.card)));
        }
        let fourcc = match config.format {
            PixelFormat::Yuyv => v4l::FourCC::new(b"YUYV"),
            PixelFormat::Mjpg => v4l::FourCC::new(b"MJPG"),
        };
        let mut fmt = device.format().map_err(|e| err("cannot read the format", e))?;
        fmt.width = config.width;
        fmt.height = config.height;
        fmt.fourcc = fourcc;
        let fmt = device.set_format(&fmt).map_err(|e| err("cannot set the format", e))?;
        if fmt.fourcc != fourcc {
            return Err(fail(format!(
                "does not offer {:?} (it chose {}); set source.format to what it offers",
                config.format, fmt.fourcc
            )));
        }
        if fmt.width < MIN_IMAGE_SIDE || fmt.height < MIN_IMAGE_SIDE {
            return Err(fail(format!("frame {}×{} too small", fmt.width, fmt.height)));
        }
        if (fmt.width, fmt.height) != (config.width, config.height) {
            tracing::warn!(
                "camera {}: asked {}×{}, the driver gives {}×{}",
                path.display(),
                config.width,
                config.height,
                fmt.width,
                fmt.height
            );
        }
        let format = Negotiated { width: fmt.width, height: fmt.height, stride: fmt.stride, format: config.format };
        Ok(Self { device, format })
    }
}

/// Streams until stopped; on any error marks the camera lost and reopens it after
/// `reconnect_ms`.
fn capture_loop(config: CameraConfig, first: Session, shared: &Shared) {
    let mut session = Some(first);
    loop {
        if shared.slot.lock().map(|s| s.stop).unwrap_or(true) {
            return;
        }
        let why = match session.take().map(Ok).unwrap_or_else(|| Session::open(&config)) {
            Ok(s) => {
                if let Ok(mut slot) = shared.slot.lock() {
                    slot.format = Some(s.format);
                }
                stream(&config, &s, shared)
            }
            Err(e) => e.to_string(),
        };
        let mut slot = match shared.slot.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        if slot.stop {
            return;
        }
        if slot.lost.is_none() {
            tracing::error!("{why}");
        }
        slot.lost = Some(why);
        slot.format = None;
        shared.changed.notify_all();
        drop(slot);
        std::thread::sleep(Duration::from_millis(config.reconnect_ms));
    }
}

/// Copies frames into the shared slot until an error (returned as the reason) or a stop.
fn stream(config: &CameraConfig, session: &Session, shared: &Shared) -> String {
    use v4l::io::traits::CaptureStream;
    let name = config.device.display();
    let mut stream = match v4l::io::mmap::Stream::with_buffers(&session.device, v4l::buffer::Type::VideoCapture, 4) {
        Ok(s) => s,
        Err(e) => return format!("camera {name}: cannot start streaming: {e}"),
    };
    stream.set_timeout(Duration::from_millis(config.frame_timeout_ms));
    loop {
        let (buf, meta) = match stream.next() {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return format!("camera {name}: no frame within {} ms", config.frame_timeout_ms)
            }
            Err(e) => return format!("camera {name}: capture failed: {e}"),
        };
        let used = (meta.bytesused as usize).min(buf.len());
        let Ok(mut slot) = shared.slot.lock() else { return "capture thread failed".into() };
        if slot.stop {
            return String::new();
        }
        // Back only once frames flow again: a device that opens but sends nothing stays lost.
        if slot.lost.take().is_some() {
            tracing::warn!("camera {name}: back");
        }
        slot.raw.clear();
        slot.raw.extend_from_slice(&buf[..used]);
        slot.sequence += 1;
        shared.changed.notify_all();
    }
}

/// Converts one raw frame to RGB.
pub fn decode(raw: &[u8], format: &Negotiated) -> Result<RgbImage, String> {
    match format.format {
        PixelFormat::Yuyv => yuyv_to_rgb(raw, format.width, format.height, format.stride),
        PixelFormat::Mjpg => mjpg_to_rgb(raw),
    }
}

/// YUYV (4:2:2, BT.601 limited range, as V4L2 cameras send by default) to RGB.
pub fn yuyv_to_rgb(raw: &[u8], width: u32, height: u32, stride: u32) -> Result<RgbImage, String> {
    let stride = (stride.max(width * 2)) as usize;
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || raw.len() < stride * (height as usize - 1) + width as usize * 2
    {
        return Err(format!("YUYV frame of {} bytes is too short for {width}×{height}", raw.len()));
    }
    let mut out = RgbImage::new(width, height);
    for (y, row) in out.rows_mut().enumerate() {
        let src = &raw[y * stride..y * stride + width as usize * 2];
        let mut px = row;
        for quad in src.chunks_exact(4) {
            let (u, v) = (quad[1] as f32 - 128.0, quad[3] as f32 - 128.0);
            for luma in [quad[0], quad[2]] {
                let c = 1.164 * (luma as f32 - 16.0);
                let p = px.next().expect("two pixels per quad");
                p.0 = [
                    (c + 1.596 * v).round().clamp(0.0, 255.0) as u8,
                    (c - 0.392 * u - 0.813 * v).round().clamp(0.0, 255.0) as u8,
                    (c + 2.017 * u).round().clamp(0.0, 255.0) as u8,
                ];
            }
        }
    }
    Ok(out)
}

/// One MJPG frame to RGB. UVC cameras may leave out the Huffman tables (DHT) and mean the
/// standard ones; zune-jpeg 0.5.15 refuses such a frame ("No DC table for component Y", seen in
/// this module's test), so the standard tables are put back first, as ffmpeg's mjpeg2jpeg does.
pub fn mjpg_to_rgb(raw: &[u8]) -> Result<RgbImage, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    if !edge_ad_core::source::jpeg_is_complete(raw) {
        return Err("MJPG frame is truncated (no end-of-image marker)".into());
    }
    let with_tables;
    let raw = if lacks_huffman_tables(raw) {
        with_tables = [&raw[..2], &STANDARD_DHT[..], &raw[2..]].concat();
        &with_tables[..]
    } else {
        raw
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(raw), options);
    let pixels = decoder.decode().map_err(|e| format!("MJPG frame does not decode: {e:?}"))?;
    let (w, h) = decoder.dimensions().ok_or("MJPG frame without dimensions")?;
    RgbImage::from_raw(w as u32, h as u32, pixels).ok_or_else(|| "MJPG frame decodes to a wrong size".to_string())
}

/// Whether a JPEG starts with SOI and reaches its first scan (SOS) without a DHT segment.
fn lacks_huffman_tables(jpeg: &[u8]) -> bool {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        match jpeg[i + 1] {
            0xC4 => return false,
            0xDA => return true,
            _ => i += 2 + u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize,
        }
    }
    false
}

/// The standard Huffman tables of JPEG Annex K.3 as one DHT segment (DC and AC, luma and
/// chroma), what a DHT-less MJPG frame means.
const STANDARD_DHT: [u8; 420] = {
    const DC_BITS_Y: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_BITS_C: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_BITS_Y: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_VALS_Y: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
        0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
        0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
        0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
        0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3,
        0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
        0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
        0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    const AC_BITS_C: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_VALS_C: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
        0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1,
        0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36,
        0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
        0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a,
        0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
        0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
        0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    // FFC4, length 418, then each table: class/id byte, 16 counts, the values.
    let mut out = [0u8; 420];
    out[0] = 0xFF;
    out[1] = 0xC4;
    out[2] = (418u16 >> 8) as u8;
    out[3] = (418u16 & 0xFF) as u8;
    let mut at = 4;
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_BITS_Y, &DC_VALS),
        (0x01, &DC_BITS_C, &DC_VALS),
        (0x10, &AC_BITS_Y, &AC_VALS_Y),
        (0x11, &AC_BITS_C, &AC_VALS_C),
    ];
    let mut t = 0;
    while t < 4 {
        let (class_id, bits, vals) = tables[t];
        out[at] = class_id;
        at += 1;
        let mut i = 0;
        while i < 16 {
            out[at] = bits[i];
            at += 1;
            i += 1;
        }
        let mut i = 0;
        while i < vals.len() {
            out[at] = vals[i];
            at += 1;
            i += 1;
        }
        t += 1;
    }
    assert!(at == 420);
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_grey_and_colours_convert_and_short_frames_are_refused() {
        // Two pixels per quad: white/black, then a saturated red pair (Y 81, U 90, V 240).
        let raw = [235, 128, 16, 128, 81, 90, 81, 240];
        let rgb = yuyv_to_rgb(&raw, 4, 1, 8).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
        let red = rgb.get_pixel(2, 0).0;
        assert!(red[0] > 240 && red[1] < 10 && red[2] < 10, "{red:?}");
        assert!(yuyv_to_rgb(&raw[..6], 4, 1, 8).unwrap_err().contains("too short"));
        assert!(yuyv_to_rgb(&raw, 4, 0, 8).is_err() && yuyv_to_rgb(&raw, 3, 1, 8).is_err());
    }

    #[test]
    fn mjpg_frames_decode_with_zune_and_garbage_is_an_error() {
        let src = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 100]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&src).unwrap();
        let rgb = mjpg_to_rgb(&jpeg).unwrap();
        assert_eq!(rgb.dimensions(), (64, 48));
        let worst = rgb.pixels().zip(src.pixels()).map(|(a, b)| (a[0] as i32 - b[0] as i32).abs()).max().unwrap();
        assert!(worst < 24, "{worst}");
        // UVC cameras leave out the Huffman tables (DHT) and mean the standard ones; the image
        // crate's encoder writes exactly the standard tables, so the stripped frame must decode the same.
        let stripped = without_dht(&jpeg);
        assert!(stripped.len() < jpeg.len(), "the encoder wrote DHT segments");
        assert_eq!(mjpg_to_rgb(&stripped).unwrap(), rgb);
        assert!(mjpg_to_rgb(b"not a jpeg").is_err());
    }

    /// The JPEG without its DHT segments (marker 0xFFC4).
    fn without_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
            let marker = jpeg[i + 1];
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if marker == 0xDA {
                break; // start of scan: the rest is entropy-coded data
            }
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let config = CameraConfig {
            device: "/dev/video-none".into(),
            width: 640,
            height: 480,
            format: PixelFormat::Yuyv,
            frame_timeout_ms: 100,
            reconnect_ms: 100,
        };
        let e = Camera::open(&config).err().expect("no such device").to_string();
        assert!(e.contains("/dev/video-none") && e.contains("cannot open"), "{e}");
    }
}
