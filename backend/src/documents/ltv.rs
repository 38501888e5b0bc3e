//! Long-term validation (PAdES baseline B-LT): a signed PDF carries the
//! data a validator needs years later, when the CA's revocation service may
//! be gone: the certificates of the signer's and the time-stamp
//! authority's chains and their certificate revocation lists, in the
//! document security store (`/DSS` of the catalog, ETSI EN 319 142-1 5.4),
//! added as an incremental update after the signature (which it does not
//! touch).
//!
//! The lists are fetched from the CRL distribution points the certificates
//! name (http only). A chain that names none stays B-T; one whose list
//! cannot be fetched stays B-T too (logged): a document is never refused
//! for it, and a B-T signature is valid until its certificate expires.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;

/// id-ce-cRLDistributionPoints.
const CRL_DISTRIBUTION_POINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.31");
/// id-aa-signatureTimeStampToken.
const SIGNATURE_TIME_STAMP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");
/// A list larger than this is not embedded (the PDF would swell).
const MAX_CRL_BYTES: usize = 2 * 1024 * 1024;

/// Every certificate a CMS signature carries, with those of the time-stamp
/// tokens in its signers' unsigned attributes (the authority's chain).
pub fn certificates_of(cms: &[u8]) -> Result<Vec<Certificate>, der::Error> {
    fn carried(sd: &SignedData) -> Vec<Certificate> {
        sd.certificates
            .iter()
            .flat_map(|set| set.0.iter())
            .filter_map(|c| match c {
                cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
    let sd: SignedData = ContentInfo::from_der(cms)?.content.decode_as()?;
    let mut certs = carried(&sd);
    for signer in sd.signer_infos.0.iter() {
        for attr in signer.unsigned_attrs.iter().flat_map(|a| a.iter()).filter(|a| a.oid == SIGNATURE_TIME_STAMP) {
            for value in attr.values.iter() {
                let token = ContentInfo::from_der(&value.to_der()?)?;
                certs.extend(carried(&token.content.decode_as()?));
            }
        }
    }
    let mut unique: Vec<Certificate> = Vec::new();
    for c in certs {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    Ok(unique)
}

/// The http URLs of a certificate's CRL distribution points.
pub fn crl_urls(cert: &Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let Some(ext) = cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == CRL_DISTRIBUTION_POINTS) else { return Vec::new() };
    let Ok(points) = x509_cert::ext::pkix::CrlDistributionPoints::from_der(ext.extn_value.as_bytes()) else { return Vec::new() };
    points
        .0
        .iter()
        .filter_map(|p| match &p.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .collect()
}

/// The validation data of a signature: its chains' certificates (DER) and
/// the lists fetched for them. None when no certificate names a list, or
/// one could not be fetched (the caller keeps the signature B-T).
pub async fn validation_data(http: &reqwest::Client, cms: &[u8]) -> Option<(Vec<Vec<u8>>, Vec<Vec<u8>>)> {
    let certs = match certificates_of(cms) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the signature's certificates cannot be read: it stays B-T");
            return None;
        }
    };
    let mut urls: Vec<String> = Vec::new();
    for u in certs.iter().flat_map(crl_urls) {
        if !urls.contains(&u) {
            urls.push(u);
        }
    }
    if urls.is_empty() {
        return None;
    }
    let mut crls = Vec::new();
    for url in &urls {
        let fetched = async {
            let r = http.get(url).send().await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("answered {}", r.status()));
            }
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if body.len() > MAX_CRL_BYTES {
                return Err(format!("{} bytes", body.len()));
            }
            // a list, not whatever the server sent (validators check its signature)
            x509_cert::crl::CertificateList::from_der(&body).map_err(|e| format!("not a CRL: {e}"))?;
            Ok(body.to_vec())
        };
        match fetched.await {
            Ok(crl) => crls.push(crl),
            Err(e) => {
                tracing::warn!(url, error = %e, "a certificate revocation list could not be fetched: the signature stays B-T");
                return None;
            }
        }
    }
    let ders = certs.iter().filter_map(|c| c.to_der().ok()).collect();
    Some((ders, crls))
}

/// Finds the last occurrence of `needle` in `hay`.
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The integer after `key` (e.g. "/Size") in a dictionary's text.
fn int_after(dict: &str, key: &str) -> Option<(usize, usize, u64)> {
    let at = dict.find(key)? + key.len();
    let rest = &dict[at..];
    let start = at + rest.len() - rest.trim_start().len();
    let digits: String = dict[start..].chars().take_while(char::is_ascii_digit).collect();
    Some((start, start + digits.len(), digits.parse().ok()?))
}

/// `pdf` with a document security store holding `certs` and `crls`, as an
/// incremental update: the streams, the `/DSS` dictionary and the catalog
/// naming it, a cross-reference section and a trailer pointing back to the
/// previous one. What was signed stays byte for byte.
pub fn append_dss(pdf: &[u8], certs: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let sx = rfind(pdf, b"startxref").ok_or("no startxref")?;
    let prev: u64 = String::from_utf8_lossy(&pdf[sx + 9..]).split_whitespace().next().and_then(|n| n.parse().ok()).ok_or("no xref offset")?;
    let tr = rfind(&pdf[..sx], b"trailer").ok_or("the last revision has no trailer dictionary (a cross-reference stream)")?;
    let trailer = String::from_utf8_lossy(&pdf[tr + 7..sx]).trim().to_string();
    let (_, _, size) = int_after(&trailer, "/Size").ok_or("the trailer has no /Size")?;
    let root_at = trailer.find("/Root").ok_or("the trailer has no /Root")? + 5;
    let mut root_ref = trailer[root_at..].split_whitespace();
    let (root, gen): (u64, u64) = match (root_ref.next().and_then(|n| n.parse().ok()), root_ref.next().and_then(|n| n.trim_end_matches('R').parse().ok())) {
        (Some(r), Some(g)) => (r, g),
        _ => return Err("the trailer's /Root cannot be read".into()),
    };
    // the catalog as its latest revision wrote it
    let head = format!("{root} {gen} obj");
    let at = pdf
        .windows(head.len())
        .enumerate()
        .filter(|(i, w)| *w == head.as_bytes() && (*i == 0 || pdf[*i - 1].is_ascii_whitespace()))
        .map(|(i, _)| i)
        .last()
        .ok_or("the catalog is not written plainly (it is in an object stream)")?;
    let body_start = at + head.len();
    let body_end = body_start + pdf[body_start..].windows(6).position(|w| w == b"endobj").ok_or("the catalog has no endobj")?;
    let body = String::from_utf8_lossy(&pdf[body_start..body_end]).trim().to_string();
    if !body.starts_with("<<") || body.contains("/DSS") {
        return Err("the catalog cannot take a /DSS".into());
    }

    let mut out = pdf.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let mut next = size;
    let mut offsets: Vec<(u64, u64, usize)> = Vec::new();
    let mut stream = |out: &mut Vec<u8>, offsets: &mut Vec<(u64, u64, usize)>, bytes: &[u8]| -> u64 {
        let id = next;
        next += 1;
        offsets.push((id, 0, out.len()));
        out.extend_from_slice(format!("{id} 0 obj\n<</Length {}>>\nstream\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\nendstream\nendobj\n");
        id
    };
    let cert_ids: Vec<u64> = certs.iter().map(|c| stream(&mut out, &mut offsets, c)).collect();
    let crl_ids: Vec<u64> = crls.iter().map(|c| stream(&mut out, &mut offsets, c)).collect();
    let refs = |ids: &[u64]| ids.iter().map(|i| format!("{i} 0 R")).collect::<Vec<_>>().join(" ");
    let dss = next;
    next += 1;
    offsets.push((dss, 0, out.len()));
    out.extend_from_slice(format!("{dss} 0 obj\n<</Type /DSS /Certs [{}] /CRLs [{}]>>\nendobj\n", refs(&cert_ids), refs(&crl_ids)).as_bytes());
    offsets.push((root, gen, out.len()));
    out.extend_from_slice(format!("{root} {gen} obj\n<</DSS {dss} 0 R {}\nendobj\n", &body[2..]).as_bytes());

    // the cross-reference section: one subsection per run of numbers
    offsets.sort_by_key(|(id, _, _)| *id);
    let xref = out.len();
    out.extend_from_slice(b"xref\n");
    let mut i = 0;
    while i < offsets.len() {
        let mut j = i + 1;
        while j < offsets.len() && offsets[j].0 == offsets[j - 1].0 + 1 {
            j += 1;
        }
        out.extend_from_slice(format!("{} {}\n", offsets[i].0, j - i).as_bytes());
        for (_, g, off) in &offsets[i..j] {
            out.extend_from_slice(format!("{off:010} {g:05} n \n").as_bytes());
        }
        i = j;
    }
    // the previous trailer with the new size and a pointer back to it
    let mut dict = trailer.clone();
    let (s0, s1, _) = int_after(&dict, "/Size").ok_or("no /Size")?;
    dict.replace_range(s0..s1, &next.to_string());
    match int_after(&dict, "/Prev") {
        Some((p0, p1, _)) => dict.replace_range(p0..p1, &prev.to_string()),
        None => {
            let close = dict.rfind(">>").ok_or("the trailer is not a dictionary")?;
            dict.insert_str(close, &format!("/Prev {prev}"));
        }
    }
    out.extend_from_slice(format!("trailer\n{dict}\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    Ok(out)
}
