//! The university's seal (公印): a PNG the registrar uploads, embedded once
//! per PDF as an image XObject (with its alpha channel as a soft mask) and
//! stamped beside the issuer on every certificate and on the last page of
//! every transcript.

use super::DocumentError;
use lopdf::{dictionary, Document, Object, ObjectId, Stream};

/// Largest seal accepted: 2 MB of PNG, 2000 x 2000 pixels.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_SIDE: u32 = 2000;

/// A decoded seal, compressed once so that every PDF only copies it.
#[derive(Clone)]
pub struct SealImage {
    width: u32,
    height: u32,
    /// RGB samples, Flate-compressed.
    rgb: Vec<u8>,
    /// The alpha channel, Flate-compressed; None when fully opaque.
    alpha: Option<Vec<u8>>,
}

impl std::fmt::Debug for SealImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealImage({}x{}, alpha: {})", self.width, self.height, self.alpha.is_some())
    }
}

fn deflate(data: &[u8]) -> Result<Vec<u8>, DocumentError> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 4), flate2::Compression::best());
    z.write_all(data).map_err(|e| DocumentError::Layout(format!("compressing the seal: {e}")))?;
    z.finish().map_err(|e| DocumentError::Layout(format!("compressing the seal: {e}")))
}

fn invalid(value: impl Into<String>) -> DocumentError {
    DocumentError::InvalidField { field: "seal_png", value: value.into() }
}

impl SealImage {
    /// Decodes a PNG (nothing else): at most [`MAX_BYTES`] and [`MAX_SIDE`] pixels a side.
    pub fn from_png(bytes: &[u8]) -> Result<SealImage, DocumentError> {
        if bytes.len() > MAX_BYTES {
            return Err(invalid(format!("{} bytes (at most {MAX_BYTES})", bytes.len())));
        }
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(invalid("not a PNG image"));
        }
        let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png);
        let (w, h) = reader.into_dimensions().map_err(|e| invalid(format!("unreadable PNG: {e}")))?;
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
            return Err(invalid(format!("{w}x{h} pixels (at most {MAX_SIDE} a side)")));
        }
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).map_err(|e| invalid(format!("unreadable PNG: {e}")))?;
        let rgba = img.to_rgba8();
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        let mut alpha = Vec::with_capacity((w * h) as usize);
        for p in rgba.pixels() {
            rgb.extend_from_slice(&p.0[..3]);
            alpha.push(p.0[3]);
        }
        let opaque = alpha.iter().all(|&a| a == 255);
        Ok(SealImage { width: w, height: h, rgb: deflate(&rgb)?, alpha: if opaque { None } else { Some(deflate(&alpha)?) } })
    }

    /// Width / height.
    pub fn aspect(&self) -> f32 {
        self.width as f32 / self.height as f32
    }

    /// Adds the image (and its soft mask) to `doc`; returns the XObject's id.
    pub(super) fn embed(&self, doc: &mut Document) -> ObjectId {
        let smask = self.alpha.as_ref().map(|a| {
            let mut s = Stream::new(
                dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => self.width as i64, "Height" => self.height as i64,
                              "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8, "Filter" => "FlateDecode" },
                a.clone(),
            );
            s.allows_compression = false;
            doc.add_object(s)
        });
        let mut dict = dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => self.width as i64, "Height" => self.height as i64,
                                     "ColorSpace" => "DeviceRGB", "BitsPerComponent" => 8, "Filter" => "FlateDecode" };
        if let Some(m) = smask {
            dict.set("SMask", Object::Reference(m));
        }
        let mut s = Stream::new(dict, self.rgb.clone());
        s.allows_compression = false;
        doc.add_object(s)
    }
}

/// Content-stream ops that stamp the seal `side` points tall (aspect kept)
/// with its lower-left corner at (x, y).
pub(super) fn stamp(seal: &SealImage, x: f32, y: f32, side: f32) -> String {
    let (w, h) = if seal.aspect() >= 1.0 { (side, side / seal.aspect()) } else { (side * seal.aspect(), side) };
    format!("q {} 0 0 {} {} {} cm /Seal Do Q\n", super::num(w), super::num(h), super::num(x), super::num(y))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ipaex_set, run, sample, write_temp};
    use super::super::{render, render_order, render_order_with, DocumentCopy};
    use super::*;
    use std::process::Command;

    /// A red ring, transparent outside it, as a PNG.
    pub(crate) fn red_seal_png(side: u32) -> Vec<u8> {
        let c = side as f32 / 2.0;
        let img = image::RgbaImage::from_fn(side, side, |x, y| {
            let d = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
            if d < c - 2.0 && (d > c * 0.8 || (x as f32 - c).abs() < side as f32 * 0.05) { image::Rgba([200, 20, 20, 255]) } else { image::Rgba([0, 0, 0, 0]) }
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).expect("png");
        out.into_inner()
    }

    fn transcript_doc() -> DocumentCopy {
        let courses = (0..60)
            .map(|i| super::super::CourseRow { year: 2020, term: "前期".into(), code: format!("LIT{i:03}"), name_ja: "日本文学概論".into(), name_en: "Introduction".into(), credits: 2.0, grade: "A".into() })
            .collect();
        DocumentCopy::Transcript(super::super::TranscriptData {
            title_ja: "成績証明書".into(), title_en: "Transcript".into(), university_ja: "国立証明大学".into(), university_en: "Shomei University".into(),
            faculty_ja: "文学部".into(), department_ja: "日本文学科".into(), holder_name_kanji: "山田 花子".into(), holder_name_roman: "YAMADA Hanako".into(),
            student_no: "L19-0042".into(), birth_date: String::new(), admission_date: String::new(), graduation_date: "2023-03-25".into(),
            courses, total_credits: 120.0, gpa: 3.0, serial: "SH-T".into(), verification_code: "K7QF-2M9X-PL3D".into(),
            verify_url: "https://shomei.example.ac.jp/verify".into(), offline_proof: String::new(), issue_date: "2026-11-24".into(),
            submitted_to: String::new(),
        })
    }

    #[test]
    fn one_seal_image_is_stamped_on_each_certificate_and_each_transcripts_last_page() {
        let seal = SealImage::from_png(&red_seal_png(200)).expect("seal");
        let docs = vec![
            DocumentCopy::Certificate(sample("SH-1", "K7QF-2M9X-PL3D")),
            transcript_doc(),
            DocumentCopy::Certificate(sample("SH-3", "Q4RT-8ZV2-MN6C")),
        ];
        let (pdf, pages) = render_order_with(&ipaex_set(), Some(&seal), &docs).expect("render");
        let file = write_temp(&pdf);
        assert!(run("qpdf", &["--check"], file.path()).contains("No syntax or stream encoding errors"));
        let list = run("pdfimages", &["-list"], file.path());
        let uses: Vec<(usize, String, String)> = list
            .lines()
            .skip(2)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.first()?.parse().ok()?, f.get(2)?.to_string(), f.get(10)?.to_string()))
            })
            .collect();
        let image_pages: Vec<usize> = uses.iter().filter(|u| u.1 == "image").map(|u| u.0).collect();
        assert_eq!(image_pages, vec![1, pages - 1, pages], "certificate, transcript's last page, certificate:\n{list}");
        let objects: std::collections::BTreeSet<&String> = uses.iter().map(|u| &u.2).collect();
        assert_eq!(objects.len(), 1, "one image object (its soft mask listed under it), shared by every page:\n{list}");
        assert_eq!(uses.iter().filter(|u| u.1 == "smask").count(), 3, "the seal keeps its transparency:\n{list}");

        // the red lands in the issuer's corner of a certificate, nowhere in the top half
        let one = render_order_with(&ipaex_set(), Some(&seal), &docs[..1]).expect("one").0;
        let f = write_temp(&one);
        let prefix = f.path().with_extension("");
        let ok = Command::new("pdftoppm").args(["-r", "36", "-png", "-singlefile"]).arg(f.path()).arg(&prefix).status().expect("pdftoppm").success();
        assert!(ok);
        let img = image::open(prefix.with_extension("png")).expect("raster").to_rgb8();
        let (w, h) = img.dimensions();
        let red = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).filter(|&(x, y)| {
                let p = img.get_pixel(x, y).0;
                p[0] > 150 && p[1] < 90 && p[2] < 90
            }).count()
        };
        assert!(red(w / 2, h * 2 / 3, w, h) > 20, "seal in the lower right");
        assert_eq!(red(0, 0, w, h / 2), 0, "nothing red in the top half");
        let _ = std::fs::remove_file(prefix.with_extension("png"));
    }

    #[test]
    fn without_a_seal_the_pdf_is_the_plain_one_and_bad_images_are_refused() {
        let copies = [sample("SH-1", "K7QF-2M9X-PL3D")];
        let docs: Vec<DocumentCopy> = copies.iter().cloned().map(DocumentCopy::Certificate).collect();
        assert_eq!(render_order(&ipaex_set(), &docs).expect("a").0, render(&ipaex_set(), &copies).expect("b"));
        let sealed = render_order_with(&ipaex_set(), Some(&SealImage::from_png(&red_seal_png(200)).expect("seal")), &docs).expect("c").0;
        let plain = render(&ipaex_set(), &copies).expect("d");
        eprintln!("a 200x200 seal adds {} bytes to a one-certificate PDF", sealed.len() as i64 - plain.len() as i64);
        assert!(matches!(SealImage::from_png(b"\xff\xd8\xff\xe0 jpeg"), Err(DocumentError::InvalidField { .. })));
        assert!(SealImage::from_png(&[0u8; 100]).is_err());
        let huge = image::RgbaImage::new(3000, 10);
        let mut out = std::io::Cursor::new(Vec::new());
        huge.write_to(&mut out, image::ImageFormat::Png).expect("png");
        match SealImage::from_png(&out.into_inner()) {
            Err(DocumentError::InvalidField { value, .. }) => assert!(value.contains("3000x10"), "{value}"),
            other => panic!("{other:?}"),
        }
        let mut truncated = red_seal_png(200);
        truncated.truncate(100);
        assert!(SealImage::from_png(&truncated).is_err());
    }
}
