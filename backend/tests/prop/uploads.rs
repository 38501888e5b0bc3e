//! Uploaded identity-document images (`uploads::sanitize`): magic-byte
//! sniffing, size and pixel limits, truncation, polyglots and decompression
//! bombs.

use crate::alloc_probe::largest_allocation;
use crate::support;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, Frame, Rgb, RgbImage, Rgba, RgbaImage};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shomei_backend::registration::uploads::{sanitize, CleanImage, Limits, UploadError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CASES: u32 = 256;

/// Small limits keep every case cheap; the checks are the same as production's.
fn limits() -> Limits {
    Limits { max_bytes: 1 << 20, max_pixels: 1_000_000, max_side: 4096 }
}

/// A decode within the limits may allocate its pixels (8 bytes each at most,
/// 16-bit RGBA) and a re-encoded copy; nothing near what a bomb claims.
fn within_limits_bound(l: &Limits) -> usize {
    (l.max_pixels as usize) * 8 * 2 + (4 << 20)
}

/// Refused on its header: nothing the size of an image is ever asked for.
const HEADER_REFUSAL_BOUND: usize = 1 << 20;

const TIME_BOUND: Duration = Duration::from_secs(10);

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn over_limits(w: u64, h: u64, l: &Limits) -> bool {
    w > u64::from(l.max_side) || h > u64::from(l.max_side) || w * h > l.max_pixels
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jpeg,
    Png,
    PngAlpha,
    Gif,
}

fn kind() -> impl Strategy<Value = Kind> {
    proptest::sample::select(vec![Kind::Jpeg, Kind::Png, Kind::PngAlpha, Kind::Gif])
}

/// A picture with structure, so that the codecs have work to do.
fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]))
}

fn encode(k: Kind, w: u32, h: u32) -> Result<Vec<u8>, TestCaseError> {
    let mut out = Vec::new();
    match k {
        Kind::Jpeg => JpegEncoder::new_with_quality(&mut out, 85).encode_image(&picture(w, h)).map_err(fail)?,
        Kind::Png => DynamicImage::ImageRgb8(picture(w, h)).write_with_encoder(PngEncoder::new(&mut out)).map_err(fail)?,
        Kind::PngAlpha => {
            let rgba = RgbaImage::from_fn(w, h, |x, y| Rgba([(x * 3) as u8, (y * 11) as u8, 90, ((x + y) * 13) as u8]));
            DynamicImage::ImageRgba8(rgba).write_with_encoder(PngEncoder::new(&mut out)).map_err(fail)?
        }
        Kind::Gif => {
            let mut enc = GifEncoder::new(&mut out);
            let rgba = RgbaImage::from_fn(w, h, |x, y| if (x / 4 + y / 4) % 2 == 0 { Rgba([200, 30, 30, 255]) } else { Rgba([20, 20, 220, 255]) });
            enc.encode_frame(Frame::new(rgba)).map_err(fail)?;
        }
    }
    Ok(out)
}

fn mime_of(k: Kind) -> (&'static str, &'static str) {
    match k {
        Kind::Jpeg => ("image/jpeg", "jpg"),
        Kind::Png | Kind::PngAlpha | Kind::Gif => ("image/png", "png"),
    }
}

/// What an accepted upload must be: an image of the type it says, that
/// decodes, at the size it says.
fn check_clean(clean: &CleanImage) -> Result<(), TestCaseError> {
    prop_assert!(matches!((clean.mime, clean.ext), ("image/jpeg", "jpg") | ("image/png", "png")), "{} {}", clean.mime, clean.ext);
    let again = image::load_from_memory(&clean.bytes).map_err(fail)?;
    prop_assert_eq!((again.width(), again.height()), (clean.width, clean.height));
    Ok(())
}

const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
const PNG_MAGIC: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn has_image_magic(b: &[u8]) -> bool {
    b.starts_with(JPEG_MAGIC) || b.starts_with(PNG_MAGIC) || b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")
}

// ------------------------------------------------------------------ sniffing and size

#[test]
fn anything_without_image_magic_is_not_an_image() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // what people upload instead: PDFs, web pages, scripts, other image types
        (
            proptest::sample::select(vec![
                b"%PDF-1.7\n".to_vec(),
                b"<!DOCTYPE html><html>".to_vec(),
                b"<svg xmlns=\"http://www.w3.org/2000/svg\">".to_vec(),
                b"RIFF\x24\0\0\0WEBPVP8 ".to_vec(),
                b"\0\0\0\x1cftypheic".to_vec(),
                b"II*\0".to_vec(),
                b"BM".to_vec(),
                b"\xFF\xD8".to_vec(),
                b"\x89PNG\r\n\x1a".to_vec(),
                b"GIF88a".to_vec(),
            ]),
            proptest::collection::vec(any::<u8>(), 0..256),
        )
            .prop_map(|(head, tail)| [head, tail].concat()),
    ];
    support::check("anything_without_image_magic_is_not_an_image", support::cases(CASES), bytes, |b| {
        let r = sanitize(&b, &limits());
        if has_image_magic(&b) {
            if let Ok(c) = &r {
                check_clean(c)?;
            }
        } else {
            prop_assert!(matches!(r, Err(UploadError::NotAnImage)), "{:?}", r.map(|c| c.mime));
        }
        Ok(())
    });
}

#[test]
fn oversize_uploads_are_refused_before_anything() {
    let strategy = (proptest::sample::select(vec![JPEG_MAGIC.to_vec(), PNG_MAGIC.to_vec(), b"GIF89a".to_vec(), Vec::new()]), 0usize..4096, 0usize..2048);
    support::check("oversize_uploads_are_refused_before_anything", support::cases(CASES), strategy, |(magic, max, extra)| {
        let l = Limits { max_bytes: max, ..limits() };
        let mut b = magic;
        b.resize(max + 1 + extra, 0x42);
        let size = b.len();
        let (r, largest) = largest_allocation(|| sanitize(&b, &l));
        prop_assert!(matches!(r, Err(UploadError::TooLarge { size: s, max: m }) if s == size && m == max), "{:?}", r.map(|c| c.mime));
        prop_assert!(largest < 4096, "allocated {} bytes to refuse an oversize upload", largest);
        Ok(())
    });
}

// ------------------------------------------------------------------ real images, whole, cut and with tails

fn dims() -> impl Strategy<Value = (u32, u32)> {
    (1u32..48, 1u32..48)
}

#[test]
fn valid_images_pass_at_their_size() {
    support::check("valid_images_pass_at_their_size", support::cases(CASES), (kind(), dims()), |(k, (w, h))| {
        let bytes = encode(k, w, h)?;
        let clean = sanitize(&bytes, &limits()).map_err(|e| fail(format!("{k:?} {w}x{h}: {e}")))?;
        prop_assert_eq!((clean.mime, clean.ext), mime_of(k));
        prop_assert_eq!((clean.width, clean.height), (w, h));
        check_clean(&clean)?;
        if k == Kind::Png {
            // lossless: the same pixels come back
            let again = image::load_from_memory(&clean.bytes).map_err(fail)?.to_rgb8();
            prop_assert!(again == picture(w, h), "PNG pixels changed");
        }
        Ok(())
    });
}

#[test]
fn truncated_images_are_refused_or_whole() {
    // big enough that the image data is most of the file
    let strategy = (kind(), (32u32..64, 32u32..64), any::<prop::sample::Index>());
    support::check("truncated_images_are_refused_or_whole", support::cases(CASES), strategy, |(k, (w, h), cut)| {
        let bytes = encode(k, w, h)?;
        let at = cut.index(bytes.len()); // a strict prefix
        let (r, largest) = largest_allocation(|| sanitize(&bytes[..at], &limits()));
        prop_assert!(largest <= within_limits_bound(&limits()), "allocated {} bytes", largest);
        match (&r, k) {
            // the walk to the end-of-image marker catches every cut JPEG
            (Ok(_), Kind::Jpeg) => return Err(fail(format!("a JPEG cut at {at} of {} passed", bytes.len()))),
            (Ok(_), Kind::Png | Kind::PngAlpha) if at < bytes.len() / 2 => return Err(fail(format!("a PNG cut at {at} of {} passed", bytes.len()))),
            (Ok(c), _) => {
                prop_assert_eq!((c.width, c.height), (w, h));
                check_clean(c)?;
            }
            (Err(_), _) => {}
        }
        Ok(())
    });
}

fn tail() -> impl Strategy<Value = (Vec<u8>, &'static [u8])> {
    prop_oneof![
        Just((b"<script>alert(document.cookie)</script>".to_vec(), &b"<script>"[..])),
        Just((b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec(), &b"/Catalog"[..])),
        Just((b"<?php system($_GET['c']); ?>".to_vec(), &b"<?php"[..])),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|junk| ([b"<html><body onload=x()>".to_vec(), junk].concat(), &b"onload="[..])),
    ]
}

#[test]
fn polyglots_lose_their_tail_or_are_refused() {
    support::check("polyglots_lose_their_tail_or_are_refused", support::cases(CASES), (kind(), dims(), tail()), |(k, (w, h), (tail, marker))| {
        let mut bytes = encode(k, w, h)?;
        bytes.extend_from_slice(&tail);
        match sanitize(&bytes, &limits()) {
            Ok(clean) => {
                prop_assert!(!contains(&clean.bytes, marker), "the tail survived in the {}", clean.mime);
                prop_assert_eq!((clean.width, clean.height), (w, h));
                check_clean(&clean)?;
            }
            // JPEG stops at its end-of-image marker and GIF at its trailer: those pass, cleaned
            Err(e) => {
                prop_assert!(matches!(k, Kind::Png | Kind::PngAlpha), "{:?} with a tail refused: {}", k, e);
            }
        }
        Ok(())
    });
}

#[test]
fn a_magic_header_then_a_document_is_refused() {
    let strategy = (proptest::sample::select(vec![JPEG_MAGIC.to_vec(), PNG_MAGIC.to_vec(), b"GIF89a".to_vec(), b"GIF87a".to_vec()]), tail());
    support::check("a_magic_header_then_a_document_is_refused", support::cases(CASES), strategy, |(magic, (tail, _))| {
        let bytes = [magic, tail].concat();
        let r = sanitize(&bytes, &limits());
        prop_assert!(r.is_err(), "a magic header and a document passed as {:?}", r.map(|c| c.mime));
        Ok(())
    });
}

#[test]
fn any_bytes_after_image_magic_never_break_the_decoders() {
    let strategy = (
        proptest::sample::select(vec![JPEG_MAGIC.to_vec(), PNG_MAGIC.to_vec(), b"GIF89a".to_vec(), b"GIF87a".to_vec()]),
        proptest::collection::vec(any::<u8>(), 0..512),
    );
    support::check("any_bytes_after_image_magic_never_break_the_decoders", support::cases(CASES), strategy, |(magic, rest)| {
        let bytes = [magic, rest].concat();
        let t = Instant::now();
        let (r, largest) = largest_allocation(|| sanitize(&bytes, &limits()));
        prop_assert!(t.elapsed() < TIME_BOUND, "took {:?}", t.elapsed());
        prop_assert!(largest <= within_limits_bound(&limits()), "allocated {} bytes", largest);
        if let Ok(c) = &r {
            check_clean(c)?;
        }
        Ok(())
    });
}

#[test]
fn damaged_images_never_break_the_decoders() {
    let strategy = (kind(), dims(), proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6));
    support::check("damaged_images_never_break_the_decoders", support::cases(CASES), strategy, |(k, (w, h), flips)| {
        let mut bytes = encode(k, w, h)?;
        for (at, xor) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        let t = Instant::now();
        let (r, largest) = largest_allocation(|| sanitize(&bytes, &limits()));
        prop_assert!(t.elapsed() < TIME_BOUND, "took {:?}", t.elapsed());
        prop_assert!(largest <= within_limits_bound(&limits()), "allocated {} bytes", largest);
        if let Ok(c) = &r {
            check_clean(c)?;
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ decompression bombs

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32(&[&kind[..], data].concat()).to_be_bytes());
    c
}

/// zlib of 16 MiB of zeros (about 16 KiB): far more than any image within
/// the limits needs, made once.
fn zlib_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..16 {
            if z.write_all(&zeros).is_err() {
                break;
            }
        }
        z.finish().unwrap_or_default()
    })
}

/// (bit depth, colour type) pairs PNG allows, and a few it does not.
fn png_format() -> impl Strategy<Value = (u8, u8)> {
    prop_oneof![
        4 => proptest::sample::select(vec![(8u8, 2u8), (8, 6), (16, 6), (16, 2), (8, 0), (1, 0), (16, 4), (8, 3)]),
        1 => (any::<u8>(), any::<u8>()),
    ]
}

#[derive(Debug, Clone)]
enum Bomb {
    /// A PNG whose IHDR claims (w, h), with an IDAT that inflates to 16 MiB.
    Png { w: u32, h: u32, depth: u8, colour: u8, tiny_idat: bool, interlace: bool },
    /// A real small JPEG whose frame header claims (w, h).
    Jpeg { w: u16, h: u16 },
    /// A real small GIF whose logical screen claims (w, h).
    GifScreen { w: u16, h: u16 },
    /// A real small GIF (16x12 screen) whose frame claims (w, h).
    GifFrame { w: u16, h: u16 },
}

fn side32() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..300, 900u32..1100, 4000u32..4200, 4097u32..=u32::MAX, Just(0u32)]
}

fn side16() -> impl Strategy<Value = u16> {
    prop_oneof![1u16..300, 900u16..1100, 4000u16..4200, 4097u16..=u16::MAX, Just(0u16)]
}

fn bomb() -> impl Strategy<Value = Bomb> {
    prop_oneof![
        3 => (side32(), side32(), png_format(), any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(w, h, (depth, colour), tiny_idat, interlace)| Bomb::Png { w, h, depth, colour, tiny_idat, interlace }),
        1 => (side16(), side16()).prop_map(|(w, h)| Bomb::Jpeg { w, h }),
        1 => (side16(), side16()).prop_map(|(w, h)| Bomb::GifScreen { w, h }),
        1 => (side16(), side16()).prop_map(|(w, h)| Bomb::GifFrame { w, h }),
    ]
}

/// The image descriptor (0x2C) of the first frame of a GIF, walking the blocks.
fn gif_frame_descriptor(g: &[u8]) -> Option<usize> {
    let flags = *g.get(10)?;
    let mut pos = 13 + if flags & 0x80 != 0 { 3 * (1usize << ((flags & 7) + 1)) } else { 0 };
    loop {
        match *g.get(pos)? {
            0x2C => return Some(pos),
            0x21 => {
                pos += 2;
                while *g.get(pos)? != 0 {
                    pos += usize::from(*g.get(pos)?) + 1;
                }
                pos += 1;
            }
            _ => return None,
        }
    }
}

impl Bomb {
    /// The file, and the size its header claims.
    fn build(&self) -> Result<(Vec<u8>, (u64, u64)), TestCaseError> {
        Ok(match *self {
            Bomb::Png { w, h, depth, colour, tiny_idat, interlace } => {
                let mut ihdr = Vec::new();
                ihdr.extend_from_slice(&w.to_be_bytes());
                ihdr.extend_from_slice(&h.to_be_bytes());
                ihdr.extend_from_slice(&[depth, colour, 0, 0, u8::from(interlace)]);
                let mut b = PNG_MAGIC.to_vec();
                b.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
                if colour == 3 {
                    b.extend_from_slice(&png_chunk(b"PLTE", &[0, 0, 0, 255, 255, 255]));
                }
                let idat: &[u8] = if tiny_idat { &[0x78, 0x9c, 0x03, 0x00, 0, 0, 0, 1] } else { zlib_bomb() };
                b.extend_from_slice(&png_chunk(b"IDAT", idat));
                b.extend_from_slice(&png_chunk(b"IEND", &[]));
                (b, (u64::from(w), u64::from(h)))
            }
            Bomb::Jpeg { w, h } => {
                let mut j = encode(Kind::Jpeg, 16, 16)?;
                let sof = j.windows(2).position(|p| p == [0xFF, 0xC0]).ok_or_else(|| fail("no SOF0 in the encoder's JPEG"))?;
                j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
                j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
                (j, (u64::from(w), u64::from(h)))
            }
            Bomb::GifScreen { w, h } => {
                let mut g = encode(Kind::Gif, 16, 12)?;
                g[6..8].copy_from_slice(&w.to_le_bytes());
                g[8..10].copy_from_slice(&h.to_le_bytes());
                (g, (u64::from(w), u64::from(h)))
            }
            Bomb::GifFrame { w, h } => {
                let mut g = encode(Kind::Gif, 16, 12)?;
                let d = gif_frame_descriptor(&g).ok_or_else(|| fail("no image descriptor in the encoder's GIF"))?;
                g[d + 5..d + 7].copy_from_slice(&w.to_le_bytes());
                g[d + 7..d + 9].copy_from_slice(&h.to_le_bytes());
                // the header sees only the 16x12 screen
                (g, (16, 12))
            }
        })
    }
}

#[test]
fn bombs_are_refused_without_allocating_what_they_claim() {
    support::check("bombs_are_refused_without_allocating_what_they_claim", support::cases(CASES), bomb(), |b| {
        let l = limits();
        let (bytes, (w, h)) = b.build()?;
        prop_assert!(bytes.len() <= l.max_bytes, "the bomb itself is {} bytes", bytes.len());
        let t = Instant::now();
        let (r, largest) = largest_allocation(|| sanitize(&bytes, &l));
        prop_assert!(t.elapsed() < TIME_BOUND, "took {:?}", t.elapsed());
        if w == 0 || h == 0 {
            prop_assert!(matches!(r, Err(UploadError::Corrupt(_))), "zero side gave {:?}", r.map(|c| (c.width, c.height)));
        } else if over_limits(w, h, &l) {
            // refused on its header, before any decoding
            prop_assert!(
                matches!(r, Err(UploadError::TooManyPixels { width, height }) if u64::from(width) == w && u64::from(height) == h),
                "{}x{} gave {:?}",
                w,
                h,
                r.map(|c| (c.width, c.height))
            );
            prop_assert!(largest < HEADER_REFUSAL_BOUND, "{}x{} refused after allocating {} bytes", w, h, largest);
        } else {
            prop_assert!(largest <= within_limits_bound(&l), "{}x{} allocated {} bytes", w, h, largest);
            if let Ok(c) = &r {
                prop_assert!(!over_limits(u64::from(c.width), u64::from(c.height), &l), "passed at {}x{}", c.width, c.height);
                check_clean(c)?;
            }
        }
        Ok(())
    });
}
