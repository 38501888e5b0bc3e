//! Identity-document images uploaded by applicants (JPEG, PNG, GIF).
//!
//! Nothing an applicant uploads is stored as sent. [`sanitize`]:
//!
//! 1. refuses a body larger than [`Limits::max_bytes`] before looking at it;
//! 2. decides the format from the magic bytes alone (never from the file name
//!    or the `Content-Type` the browser sent);
//! 3. reads the width and height from the header without decoding pixels, so
//!    that a "decompression bomb" (a tiny file claiming 60000×60000 pixels) is
//!    refused at once and with no allocation;
//! 4. decodes the whole image, with the `image` crate's own limits as a second
//!    guard, refusing truncated or corrupt files;
//! 5. re-encodes it (JPEG stays JPEG, PNG and GIF become PNG), which drops
//!    EXIF (GPS position, camera serial…), ICC profiles, text chunks, GIF
//!    comments and anything appended after the image. The EXIF orientation
//!    is applied to the pixels first, so a phone photo taken upright stays
//!    upright.
//!
//! Decoding is CPU-bound (tens to hundreds of milliseconds for a phone
//! photo): call [`sanitize`] from `tokio::task::spawn_blocking`.
//!
//! Store the result under [`generated_name`] plus [`CleanImage::ext`], never
//! under a name the applicant chose, and serve it with [`CleanImage::mime`].

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
use rand::rngs::OsRng;
use rand::RngCore;
use std::io::Cursor;

/// JPEG quality of re-encoded photos: high enough that the text of a scanned
/// document stays sharp.
const JPEG_QUALITY: u8 = 90;

/// Bytes per decoded pixel the allocation guard allows for: 16-bit RGBA, the
/// widest layout a PNG decodes to.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// What an upload may be at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of the uploaded file in bytes.
    pub max_bytes: usize,
    /// Width × height.
    pub max_pixels: u64,
    /// Width, and height, each.
    pub max_side: u32,
}

impl Default for Limits {
    /// 10 MiB, 40 megapixels, 12000 pixels on a side. [`UploadError::message`]
    /// names these numbers.
    fn default() -> Self {
        Limits {
            max_bytes: 10 * 1024 * 1024,
            max_pixels: 24_000_000,
            max_side: 12_000,
        }
    }
}

/// An uploaded image that was decoded and re-encoded: safe to store and serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanImage {
    /// `"image/jpeg"` or `"image/png"`.
    pub mime: &'static str,
    /// `"jpg"` or `"png"`, without the dot.
    pub ext: &'static str,
    /// Width in pixels, after the EXIF orientation was applied.
    pub width: u32,
    /// Height in pixels, after the EXIF orientation was applied.
    pub height: u32,
    /// The re-encoded file.
    pub bytes: Vec<u8>,
}

/// Why an upload was refused.
///
/// `Display` is an English sentence for the logs; show the applicant
/// [`UploadError::message`] instead.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file is larger than [`Limits::max_bytes`].
    #[error("upload of {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The limit it broke.
        max: usize,
    },
    /// The magic bytes are not those of a JPEG, PNG or GIF.
    #[error("upload is not a JPEG, PNG or GIF image")]
    NotAnImage,
    /// The header claims more pixels, or a longer side, than allowed.
    #[error("image of {width}x{height} pixels is over the pixel limits")]
    TooManyPixels {
        /// Width as the header claims it.
        width: u32,
        /// Height as the header claims it.
        height: u32,
    },
    /// Truncated, corrupt, or using a variant of the format the decoder
    /// cannot read.
    #[error("image is corrupt or truncated: {0}")]
    Corrupt(String),
    /// The decoded image could not be re-encoded (not the applicant's fault).
    #[error("re-encoding the image failed: {0}")]
    Encode(#[source] ImageError),
}

impl UploadError {
    /// A sentence for the applicant: `(Japanese, English)`.
    ///
    /// The size and pixel sentences name the limits of [`Limits::default`].
    pub fn message(&self) -> (&'static str, &'static str) {
        match self {
            UploadError::TooLarge { .. } => (
                "ファイルが大きすぎます。10 MB 以下の画像を選んでください。",
                "The file is too large. Please choose an image of at most 10 MB.",
            ),
            UploadError::NotAnImage => (
                "JPEG、PNG、GIF の画像を選んでください。PDF などほかの形式のファイルは受け付けられません。",
                "Please choose a JPEG, PNG or GIF image. PDFs and other kinds of file cannot be accepted.",
            ),
            UploadError::TooManyPixels { .. } => (
                "画像の画素数が多すぎます。4000 万画素以下（縦横それぞれ 12000 画素以下）に縮小してから選んでください。",
                "The image has too many pixels. Please reduce it to at most 40 megapixels (12,000 pixels on each side) and choose it again.",
            ),
            UploadError::Corrupt(_) => (
                "画像が壊れているか途中までしかありません。もう一度撮影するか、別のファイルを選んでください。",
                "The image is damaged or incomplete. Please take the photo again or choose another file.",
            ),
            UploadError::Encode(_) => (
                "画像を処理できませんでした。しばらくしてからもう一度お試しください。",
                "The image could not be processed. Please try again later.",
            ),
        }
    }
}

/// The formats accepted, decided by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jpeg,
    Png,
    Gif,
}

impl Kind {
    fn sniff(bytes: &[u8]) -> Option<Kind> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Kind::Jpeg)
        } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(Kind::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Kind::Gif)
        } else {
            None
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Png => ImageFormat::Png,
            Kind::Gif => ImageFormat::Gif,
        }
    }
}

/// Checks, decodes and re-encodes an uploaded image. See the module
/// documentation for the steps; each refusal is an [`UploadError`].
pub fn sanitize(bytes: &[u8], limits: &Limits) -> Result<CleanImage, UploadError> {
    if bytes.len() > limits.max_bytes {
        return Err(UploadError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let kind = Kind::sniff(bytes).ok_or(UploadError::NotAnImage)?;
    let (width, height) = header_dimensions(kind, bytes, limits)?;
    check_pixels(width, height, limits)?;

    let image = decode(kind, bytes, width, height, limits)?;
    let clean = encode(kind, &image)?;
    tracing::debug!(
        format = ?kind,
        width = clean.width,
        height = clean.height,
        bytes_in = bytes.len(),
        bytes_out = clean.bytes.len(),
        "upload sanitized"
    );
    Ok(clean)
}

/// A random name of 128 bits, as 32 lowercase hex digits, for storing an
/// upload on disk. Append `.` and [`CleanImage::ext`].
pub fn generated_name() -> String {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), UploadError> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(UploadError::TooManyPixels { width, height });
    }
    Ok(())
}

fn corrupt(what: &str) -> UploadError {
    UploadError::Corrupt(what.to_owned())
}

/// Width and height from the header, without decoding any pixel.
fn header_dimensions(kind: Kind, b: &[u8], limits: &Limits) -> Result<(u32, u32), UploadError> {
    let (w, h) = match kind {
        Kind::Png => png_dimensions(b)?,
        Kind::Gif => gif_dimensions(b)?,
        Kind::Jpeg => jpeg_dimensions(b, limits)?,
    };
    if w == 0 || h == 0 {
        return Err(corrupt("image header gives a zero width or height"));
    }
    Ok((w, h))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// PNG: the first chunk must be IHDR; width and height are its first 8 bytes.
fn png_dimensions(b: &[u8]) -> Result<(u32, u32), UploadError> {
    if b.get(12..16) != Some(b"IHDR") || be32(b, 8) != Some(13) {
        return Err(corrupt("PNG does not start with an IHDR chunk"));
    }
    match (be32(b, 16), be32(b, 20)) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err(corrupt("PNG header is truncated")),
    }
}

/// GIF: the logical screen size, little-endian, after the 6-byte signature.
/// Frames larger than the screen are caught by the decoder's allocation limit.
fn gif_dimensions(b: &[u8]) -> Result<(u32, u32), UploadError> {
    match (b.get(6..8), b.get(8..10)) {
        (Some(w), Some(h)) => Ok((
            u32::from(u16::from_le_bytes([w[0], w[1]])),
            u32::from(u16::from_le_bytes([h[0], h[1]])),
        )),
        _ => Err(corrupt("GIF header is truncated")),
    }
}

/// JPEG: walks the marker segments to the frame header (SOFn) for the size,
/// then on through the entropy-coded scans to the end-of-image marker.
///
/// The walk to EOI is what catches a truncated JPEG: the decoder the `image`
/// crate uses (zune-jpeg, non-strict) pads a cut-off file with grey and
/// reports success.
fn jpeg_dimensions(b: &[u8], limits: &Limits) -> Result<(u32, u32), UploadError> {
    let mut size: Option<(u32, u32)> = None;
    let mut pos = 2; // after SOI
    loop {
        if b.get(pos) != Some(&0xFF) {
            return Err(corrupt(if pos >= b.len() {
                "JPEG ends before its end-of-image marker"
            } else {
                "JPEG marker expected"
            }));
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *b
            .get(pos + 1)
            .ok_or_else(|| corrupt("JPEG ends inside a marker"))?;
        pos += 2;
        match marker {
            0xD9 => break,                  // EOI; anything after it is dropped by re-encoding
            0xD0..=0xD7 | 0x01 => continue, // standalone markers
            0x00 | 0xD8 => return Err(corrupt("unexpected JPEG marker")),
            _ => {}
        }
        let len = usize::from(be16(b, pos).ok_or_else(|| corrupt("JPEG ends inside a segment"))?);
        if len < 2 || pos + len > b.len() {
            return Err(corrupt("JPEG segment runs past the end of the file"));
        }
        let seg = &b[pos..pos + len];
        pos += len;
        match marker {
            // SOF0..SOF15, less DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if size.is_some() {
                    return Err(corrupt("JPEG has two frame headers"));
                }
                let (h, w) = match (be16(seg, 3), be16(seg, 5)) {
                    (Some(h), Some(w)) => (u32::from(h), u32::from(w)),
                    _ => return Err(corrupt("JPEG frame header is too short")),
                };
                if w == 0 || h == 0 {
                    // Height 0 means "given later in a DNL marker": rare, refused.
                    return Err(corrupt("JPEG frame header gives a zero width or height"));
                }
                // Refuse an oversized image before walking the rest.
                check_pixels(w, h, limits)?;
                size = Some((w, h));
            }
            0xDA => {
                if size.is_none() {
                    return Err(corrupt("JPEG scan before its frame header"));
                }
                // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a
                // restart marker; anything else is the next marker.
                loop {
                    match b
                        .get(pos..)
                        .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
                    {
                        None => return Err(corrupt("JPEG ends inside its image data")),
                        Some(i) => pos += i,
                    }
                    match b.get(pos + 1) {
                        None => return Err(corrupt("JPEG ends inside its image data")),
                        Some(0x00 | 0xD0..=0xD7) => pos += 2,
                        Some(_) => break,
                    }
                }
            }
            _ => {}
        }
    }
    size.ok_or_else(|| corrupt("JPEG has no frame header"))
}

fn decode_error(e: ImageError, width: u32, height: u32) -> UploadError {
    match e {
        ImageError::Limits(_) => UploadError::TooManyPixels { width, height },
        other => UploadError::Corrupt(other.to_string()),
    }
}

/// Full decode, with the `image` crate's limits as a second guard, and the
/// EXIF orientation applied.
fn decode(
    kind: Kind,
    bytes: &[u8],
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<DynamicImage, UploadError> {
    let max_alloc = limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(max_alloc);

    let mut reader = ImageReader::with_format(Cursor::new(bytes), kind.format());
    reader.limits(image_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| decode_error(e, width, height))?;
    // `into_decoder` (unlike `ImageReader::decode`) does not count the output
    // buffer against `max_alloc`; do it here.
    if decoder.total_bytes() > max_alloc {
        return Err(UploadError::TooManyPixels { width, height });
    }
    // A broken EXIF block is not worth refusing the photo for.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e, width, height))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Re-encodes: JPEG as JPEG, PNG and GIF (first frame) as PNG.
fn encode(kind: Kind, image: &DynamicImage) -> Result<CleanImage, UploadError> {
    let mut out = Vec::new();
    let (mime, ext) = match kind {
        Kind::Jpeg => {
            let mut enc = JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
            match image {
                DynamicImage::ImageLuma8(gray) => enc.encode_image(gray),
                other => enc.encode_image(&other.to_rgb8()),
            }
            .map_err(UploadError::Encode)?;
            ("image/jpeg", "jpg")
        }
        Kind::Png | Kind::Gif => {
            image
                .write_with_encoder(PngEncoder::new(&mut out))
                .map_err(UploadError::Encode)?;
            ("image/png", "png")
        }
    };
    Ok(CleanImage {
        mime,
        ext,
        width: image.width(),
        height: image.height(),
        bytes: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::{Frame, Rgb, RgbImage, Rgba, RgbaImage};
    use std::time::{Duration, Instant};

    /// A test picture with some structure, so that codecs have work to do.
    fn picture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
        })
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&picture(w, h))
            .unwrap();
        out
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(picture(w, h))
            .write_with_encoder(PngEncoder::new(&mut out))
            .unwrap();
        out
    }

    fn gif_two_frames() -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut out);
            let red = RgbaImage::from_pixel(16, 12, Rgba([255, 0, 0, 255]));
            let blue = RgbaImage::from_pixel(16, 12, Rgba([0, 0, 255, 255]));
            enc.encode_frames(vec![Frame::new(red), Frame::new(blue)])
                .unwrap();
        }
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        c.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        c
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// An APP1 Exif segment: big-endian TIFF, one IFD entry (Orientation),
    /// then some private bytes that must not survive.
    fn exif_segment(orientation: u16, secret: &[u8]) -> Vec<u8> {
        let mut body = b"Exif\0\0".to_vec();
        body.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // TIFF header, IFD at 8
        body.extend_from_slice(&1u16.to_be_bytes()); // one entry
        body.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        body.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        body.extend_from_slice(&1u32.to_be_bytes()); // count
        body.extend_from_slice(&orientation.to_be_bytes());
        body.extend_from_slice(&[0, 0]); // padding of the 4-byte value
        body.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        body.extend_from_slice(secret);
        let mut seg = vec![0xFF, 0xE1];
        seg.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        seg.extend_from_slice(&body);
        seg
    }

    fn with_exif(jpeg: &[u8], orientation: u16, secret: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend_from_slice(&exif_segment(orientation, secret));
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn decodes(clean: &CleanImage) -> DynamicImage {
        let img = image::load_from_memory(&clean.bytes).unwrap();
        assert_eq!((img.width(), img.height()), (clean.width, clean.height));
        img
    }

    #[test]
    fn jpeg_passes_and_stays_jpeg() {
        let clean = sanitize(&jpeg(64, 48), &Limits::default()).unwrap();
        assert_eq!((clean.mime, clean.ext), ("image/jpeg", "jpg"));
        assert_eq!((clean.width, clean.height), (64, 48));
        assert_eq!(Kind::sniff(&clean.bytes), Some(Kind::Jpeg));
        decodes(&clean);
    }

    #[test]
    fn png_passes_and_stays_png() {
        let clean = sanitize(&png(30, 20), &Limits::default()).unwrap();
        assert_eq!((clean.mime, clean.ext), ("image/png", "png"));
        assert_eq!((clean.width, clean.height), (30, 20));
        // Lossless: the pixels come back exactly.
        assert_eq!(decodes(&clean).to_rgb8(), picture(30, 20));
    }

    #[test]
    fn gif_becomes_png_of_first_frame() {
        let clean = sanitize(&gif_two_frames(), &Limits::default()).unwrap();
        assert_eq!((clean.mime, clean.ext), ("image/png", "png"));
        assert_eq!((clean.width, clean.height), (16, 12));
        let img = decodes(&clean).to_rgba8();
        assert_eq!(img.get_pixel(5, 5), &Rgba([255, 0, 0, 255]));
    }

    #[test]
    fn pdf_html_text_webp_are_not_images() {
        let cases: [&[u8]; 6] = [
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>",
            b"just some text",
            b"RIFF\x24\0\0\0WEBPVP8 ",
            b"",
            b"\xFF\xD8", // too short even for the JPEG magic
        ];
        for bytes in cases {
            assert!(matches!(
                sanitize(bytes, &Limits::default()),
                Err(UploadError::NotAnImage)
            ));
        }
    }

    #[test]
    fn huge_png_header_refused_fast() {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&60_000u32.to_be_bytes());
        ihdr.extend_from_slice(&60_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
        let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
        bomb.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
        bomb.extend_from_slice(&png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0, 0, 0, 1]));
        bomb.extend_from_slice(&png_chunk(b"IEND", &[]));
        assert!(bomb.len() < 100);

        let start = Instant::now();
        let r = sanitize(&bomb, &Limits::default());
        assert!(start.elapsed() < Duration::from_millis(100));
        assert!(matches!(
            r,
            Err(UploadError::TooManyPixels {
                width: 60_000,
                height: 60_000
            })
        ));
    }

    #[test]
    fn huge_jpeg_and_gif_headers_refused() {
        // A real JPEG whose frame header is rewritten to 60000x60000.
        let mut j = jpeg(16, 16);
        let sof = j.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        j[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
        j[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
        assert!(matches!(
            sanitize(&j, &Limits::default()),
            Err(UploadError::TooManyPixels {
                width: 60_000,
                height: 60_000
            })
        ));

        let mut g = gif_two_frames();
        g[6..8].copy_from_slice(&65_000u16.to_le_bytes());
        assert!(matches!(
            sanitize(&g, &Limits::default()),
            Err(UploadError::TooManyPixels {
                width: 65_000,
                height: 12
            })
        ));
    }

    #[test]
    fn gif_frame_larger_than_its_screen_hits_the_second_guard() {
        // The header check only sees the 16x12 logical screen; the frame
        // descriptor claims 20000x20000. The image crate's limits refuse it
        // before allocating.
        let mut g = gif_two_frames();
        let d = g.iter().position(|&b| b == 0x2C).unwrap(); // image descriptor
        assert_eq!(&g[d + 5..d + 9], &[16, 0, 12, 0]);
        g[d + 5..d + 7].copy_from_slice(&20_000u16.to_le_bytes());
        g[d + 7..d + 9].copy_from_slice(&20_000u16.to_le_bytes());
        let start = Instant::now();
        assert!(matches!(
            sanitize(&g, &Limits::default()),
            Err(UploadError::TooManyPixels { .. })
        ));
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn custom_pixel_limits_apply() {
        let limits = Limits {
            max_pixels: 100,
            ..Limits::default()
        };
        assert!(matches!(
            sanitize(&png(20, 20), &limits),
            Err(UploadError::TooManyPixels {
                width: 20,
                height: 20
            })
        ));
        let limits = Limits {
            max_side: 19,
            ..Limits::default()
        };
        assert!(matches!(
            sanitize(&jpeg(20, 8), &limits),
            Err(UploadError::TooManyPixels { .. })
        ));
    }

    #[test]
    fn thirty_megabytes_refused_before_anything() {
        let mut big = vec![0u8; 30 * 1024 * 1024];
        assert!(matches!(
            sanitize(&big, &Limits::default()),
            Err(UploadError::TooLarge { size, max }) if size == 30 << 20 && max == 10 << 20
        ));
        // Even with image magic bytes in front.
        big[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
        assert!(matches!(
            sanitize(&big, &Limits::default()),
            Err(UploadError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_jpeg_is_corrupt() {
        let j = jpeg(64, 64);
        let half = &j[..j.len() / 2];
        assert!(matches!(
            sanitize(half, &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        // Only the last two bytes (EOI) missing.
        let almost = &j[..j.len() - 2];
        assert!(matches!(
            sanitize(almost, &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        // Cut inside the headers.
        assert!(matches!(
            sanitize(&j[..40], &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_png_and_gif_are_corrupt() {
        let p = png(64, 64);
        assert!(matches!(
            sanitize(&p[..p.len() / 2], &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        assert!(matches!(
            sanitize(&p[..20], &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        let g = gif_two_frames();
        assert!(matches!(
            sanitize(&g[..8], &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        assert!(matches!(
            sanitize(&g[..30], &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
    }

    #[test]
    fn garbage_after_magic_is_corrupt() {
        let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
        p.extend_from_slice(&[0x42; 200]);
        assert!(matches!(
            sanitize(&p, &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0];
        j.extend_from_slice(&[0x42; 200]);
        assert!(matches!(
            sanitize(&j, &Limits::default()),
            Err(UploadError::Corrupt(_))
        ));
    }

    #[test]
    fn exif_is_dropped_and_orientation_applied() {
        let secret = b"GPS 35.6812N 139.7671E serial 0042";
        // Orientation 6: the camera was turned; display rotated 90 degrees clockwise.
        let input = with_exif(&jpeg(40, 20), 6, secret);
        assert!(contains(&input, b"Exif") && contains(&input, secret));
        let clean = sanitize(&input, &Limits::default()).unwrap();
        assert!(!contains(&clean.bytes, b"Exif"));
        assert!(!contains(&clean.bytes, secret));
        assert_eq!((clean.width, clean.height), (20, 40));
        decodes(&clean);

        // Orientation 1: size unchanged, EXIF still dropped.
        let clean = sanitize(&with_exif(&jpeg(40, 20), 1, secret), &Limits::default()).unwrap();
        assert_eq!((clean.width, clean.height), (40, 20));
        assert!(!contains(&clean.bytes, b"Exif"));
    }

    #[test]
    fn png_text_chunks_and_trailing_payloads_are_dropped() {
        let p = png(10, 10);
        let mut with_text = p[..33].to_vec(); // signature + IHDR chunk
        with_text.extend_from_slice(&png_chunk(b"tEXt", b"Comment\0private note"));
        with_text.extend_from_slice(&p[33..]);
        let clean = sanitize(&with_text, &Limits::default()).unwrap();
        assert!(!contains(&clean.bytes, b"private note"));

        // A GIF/HTML polyglot: the script after the image does not survive.
        let mut poly = gif_two_frames();
        poly.extend_from_slice(b"<script>alert(document.cookie)</script>");
        let clean = sanitize(&poly, &Limits::default()).unwrap();
        assert!(!contains(&clean.bytes, b"<script>"));

        let mut j = jpeg(16, 16);
        j.extend_from_slice(b"<script>x</script>");
        let clean = sanitize(&j, &Limits::default()).unwrap();
        assert!(!contains(&clean.bytes, b"<script>"));
    }

    #[test]
    fn grayscale_and_alpha_survive() {
        let gray = DynamicImage::ImageRgb8(picture(24, 24)).to_luma8();
        let mut j = Vec::new();
        JpegEncoder::new(&mut j).encode_image(&gray).unwrap();
        let clean = sanitize(&j, &Limits::default()).unwrap();
        assert_eq!(decodes(&clean).color(), image::ColorType::L8);

        let rgba = RgbaImage::from_pixel(8, 8, Rgba([10, 20, 30, 40]));
        let mut p = Vec::new();
        DynamicImage::ImageRgba8(rgba.clone())
            .write_with_encoder(PngEncoder::new(&mut p))
            .unwrap();
        let clean = sanitize(&p, &Limits::default()).unwrap();
        assert_eq!(decodes(&clean).to_rgba8(), rgba);
    }

    #[test]
    fn every_error_has_both_messages() {
        let errors = [
            UploadError::TooLarge { size: 1, max: 0 },
            UploadError::NotAnImage,
            UploadError::TooManyPixels {
                width: 1,
                height: 1,
            },
            UploadError::Corrupt(String::new()),
            UploadError::Encode(ImageError::IoError(std::io::Error::other("x"))),
        ];
        for e in errors {
            let (ja, en) = e.message();
            assert!(!ja.is_empty() && !en.is_empty() && ja != en);
        }
        assert!(UploadError::TooLarge { size: 1, max: 0 }
            .message()
            .1
            .contains("10 MB"));
        assert!(UploadError::NotAnImage
            .message()
            .0
            .contains("JPEG、PNG、GIF"));
    }

    #[test]
    fn generated_names_are_random_hex() {
        let a = generated_name();
        let b = generated_name();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
