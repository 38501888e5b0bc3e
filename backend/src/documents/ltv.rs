//! Long-term validation (PAdES baseline B-LT): a signed PDF carries the
//! data a validator needs years later, when the CA's revocation service may
//! be gone: the certificates of the signer's and the time-stamp
//! authority's chains and their revocation data (OCSP answers, else
//! certificate revocation lists), in the
//! document security store (`/DSS` of the catalog, ETSI EN 319 142-1 5.4),
//! added as an incremental update after the signature (which it does not
//! touch).
//!
//! OCSP answers (checked by the `tsp-ltv` crate: the responder's signature,
//! our nonce, freshness) and lists are fetched from the responders and CRL
//! distribution points named by trusted
//! certificates only: the university's configured chain and the time-stamp
//! authority's path up to a configured anchor (never a certificate a token
//! merely carries). At most a few lists, no redirects, a size cap, each
//! kept until its next update. A chain that names none stays B-T; one whose
//! list cannot be fetched stays B-T too (logged): a document is never
//! refused for it, and a B-T signature is valid until its certificate
//! expires.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;

/// id-ce-cRLDistributionPoints.
const CRL_DISTRIBUTION_POINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.31");
/// A list larger than this is not embedded (the PDF would swell).
const MAX_CRL_BYTES: usize = 2 * 1024 * 1024;
/// How long one list or OCSP answer is waited for.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a chain's validation data may take in all: past it, the
/// signature stays B-T (a slow CA never holds a graduate's download up).
pub const BUDGET: Duration = Duration::from_secs(8);

/// `fetch` within [`BUDGET`]; past it, unavailable.
pub async fn within_budget(fetch: impl std::future::Future<Output = Result<Option<ValidationData>, Unavailable>>) -> Result<Option<ValidationData>, Unavailable> {
    match tokio::time::timeout(BUDGET, fetch).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("revocation data took too long: the signature stays B-T");
            Err(Unavailable)
        }
    }
}

/// Lists fetched for one signature at most.
const MAX_LISTS: usize = 8;
/// A list is fetched again after this at the latest, whatever its next update says.
const KEEP_AT_MOST: Duration = Duration::from_secs(3600);

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

/// The client revocation data is fetched with: no redirects (a list or an
/// answer is where the certificate says, or not at all).
fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default())
}

/// Lists fetched, by URL, with when they are to be fetched again.
fn cache() -> &'static Mutex<HashMap<String, (Vec<u8>, SystemTime)>> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Vec<u8>, SystemTime)>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The list at `url`: kept, or fetched (no redirects, at most
/// [`MAX_CRL_BYTES`], parsed as a CRL) and kept until its next update.
async fn crl(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let now = SystemTime::now();
    if let Some((bytes, until)) = cache().lock().map_err(|e| e.to_string())?.get(url) {
        if *until > now {
            return Ok(bytes.clone());
        }
    }
    let mut r = http().get(url).timeout(timeout).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("answered {}", r.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_CRL_BYTES {
            return Err(format!("larger than {MAX_CRL_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    // a list, not whatever the server sent (validators check its signature)
    let list = x509_cert::crl::CertificateList::from_der(&body).map_err(|e| format!("not a CRL: {e}"))?;
    let next = list.tbs_cert_list.next_update.map(|t| t.to_system_time()).unwrap_or(now);
    if next <= now {
        // validators would refuse it as stale
        return Err("the list is past its next update".into());
    }
    let until = next.min(now + KEEP_AT_MOST);
    cache().lock().map_err(|e| e.to_string())?.insert(url.to_string(), (body.clone(), until));
    Ok(body)
}

/// The http URLs of the OCSP responders a certificate names (authority information access).
pub fn ocsp_urls(cert: &Certificate) -> Vec<String> {
    tsp_ltv::ltv::extract_aia_urls(cert, tsp_ltv::ltv::AiaAccessMethod::Ocsp)
        .into_iter()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .collect()
}

/// OCSP answers kept, by responder and certificate serial, with until when.
fn ocsp_cache() -> &'static Mutex<HashMap<(String, Vec<u8>), (Vec<u8>, SystemTime)>> {
    static CACHE: OnceLock<Mutex<HashMap<(String, Vec<u8>), (Vec<u8>, SystemTime)>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// How long an OCSP answer is embedded again before a fresh one is asked for.
const OCSP_KEEP: Duration = Duration::from_secs(300);

/// A fresh OCSP answer that `cert` is good, from the responder at `url`,
/// checked with tsp-ltv (signed by the issuer or its delegated responder,
/// our nonce, within its validity window).
async fn ocsp(url: &str, cert: &Certificate, issuer: &Certificate, timeout: Duration) -> Result<Vec<u8>, String> {
    // (the issuer's key in the key: two issuers behind one responder may share a serial)
    let issuer_key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let key = (url.to_string(), [cert.tbs_certificate.serial_number.as_bytes(), b"|", issuer_key].concat());
    let now = SystemTime::now();
    if let Some((answer, until)) = ocsp_cache().lock().map_err(|e| e.to_string())?.get(&key) {
        if *until > now {
            return Ok(answer.clone());
        }
    }
    let (request, nonce) = tsp_ltv::ltv::build_ocsp_request_with_nonce(cert, issuer).map_err(|e| e.to_string())?;
    let mut r = http()
        .post(url)
        .header("Content-Type", "application/ocsp-request")
        .body(request)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("answered {}", r.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > 256 * 1024 {
            return Err("an OCSP answer larger than 256 KB".into());
        }
        body.extend_from_slice(&chunk);
    }
    match tsp_ltv::ltv::ocsp::check_revocation(&body, cert, issuer, Some(&nonce), None) {
        Ok(tsp_ltv::ltv::ValidationStatus::Valid { .. }) => {}
        Ok(other) => return Err(format!("the responder does not say good: {other:?}")),
        Err(e) => return Err(format!("the answer does not check: {e}")),
    }
    ocsp_cache().lock().map_err(|e| e.to_string())?.insert(key, (body.clone(), now + OCSP_KEEP));
    Ok(body)
}

/// A chain's validation data: certificates, OCSP answers and lists (DER).
#[derive(Debug, Default, Clone)]
pub struct ValidationData {
    pub certs: Vec<Vec<u8>>,
    pub ocsps: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
}

impl ValidationData {
    /// `self` with what `other` holds besides.
    pub fn merge(mut self, other: ValidationData) -> ValidationData {
        for (mine, theirs) in [(&mut self.certs, other.certs), (&mut self.ocsps, other.ocsps), (&mut self.crls, other.crls)] {
            for item in theirs {
                if !mine.contains(&item) {
                    mine.push(item);
                }
            }
        }
        self
    }
}

/// Revocation data named for a certificate could not be had.
#[derive(Debug)]
pub struct Unavailable;

/// The validation data for `chain` (the signer's configured chain, or the
/// time-stamp authority's verified path): its certificates, an OCSP answer
/// for each certificate whose responder is named (its issuer in the same
/// chain), else the revocation lists it names. Ok(None) when nothing in it
/// names revocation data; Err when something named could not be had (the
/// caller keeps the signature B-T).
pub async fn validation_data(chain: &[Certificate], timeout: Duration) -> Result<Option<ValidationData>, Unavailable> {
    let mut data = ValidationData::default();
    let mut urls: Vec<String> = Vec::new();
    for cert in chain {
        if let Ok(der) = cert.to_der() {
            if !data.certs.contains(&der) {
                data.certs.push(der);
            }
        }
        if cert.tbs_certificate.subject == cert.tbs_certificate.issuer {
            continue; // a root: trusted as itself
        }
        let issuer = chain.iter().find(|c| c.tbs_certificate.subject == cert.tbs_certificate.issuer);
        let responders = ocsp_urls(cert);
        if let (Some(issuer), Some(url)) = (issuer, responders.first()) {
            match ocsp(url, cert, issuer, timeout).await {
                Ok(answer) => {
                    if !data.ocsps.contains(&answer) {
                        data.ocsps.push(answer);
                    }
                    continue;
                }
                Err(e) => tracing::warn!(url, error = %e, "no OCSP answer: trying the certificate's revocation lists"),
            }
        }
        let lists = crl_urls(cert);
        if lists.is_empty() && !responders.is_empty() {
            tracing::warn!(subject = %cert.tbs_certificate.subject, "its OCSP responder did not answer and it names no revocation list: the signature stays B-T");
            return Err(Unavailable);
        }
        for u in lists {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    if urls.len() > MAX_LISTS {
        tracing::warn!(lists = urls.len(), "the chain names more revocation lists than are fetched: the signature stays B-T");
        return Err(Unavailable);
    }
    for url in &urls {
        match crl(url, timeout).await {
            Ok(list) => data.crls.push(list),
            Err(e) => {
                tracing::warn!(url, error = %e, "a certificate revocation list could not be fetched: the signature stays B-T");
                return Err(Unavailable);
            }
        }
    }
    Ok((!data.ocsps.is_empty() || !data.crls.is_empty()).then_some(data))
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

/// `pdf` with a document security store holding `data`'s certificates, OCSP answers and lists, as an
/// incremental update: the streams, the `/DSS` dictionary and the catalog
/// naming it, a cross-reference section and a trailer pointing back to the
/// previous one. What was signed stays byte for byte.
pub fn append_dss(pdf: &[u8], data: &ValidationData) -> Result<Vec<u8>, String> {
    let (certs, ocsps, crls) = (&data.certs, &data.ocsps, &data.crls);
    let sx = rfind(pdf, b"startxref").ok_or("no startxref")?;
    let prev: usize = std::str::from_utf8(&pdf[sx + 9..]).ok().and_then(|t| t.split_whitespace().next()).and_then(|n| n.parse().ok()).ok_or("no xref offset")?;
    // the last revision must have a classic cross-reference table (underskrift writes one)
    if !pdf.get(prev..).is_some_and(|rest| rest.starts_with(b"xref")) {
        return Err("the last revision's cross-reference is not a table".into());
    }
    let tr = prev + rfind(&pdf[prev..sx], b"trailer").ok_or("the last revision has no trailer")?;
    let trailer = std::str::from_utf8(&pdf[tr + 7..sx]).map_err(|_| "the trailer is not text")?.trim().to_string();
    if trailer.contains("/XRefStm") || trailer.contains("/Encrypt") {
        return Err("a hybrid or encrypted file".into());
    }
    let (_, _, size) = int_after(&trailer, "/Size").ok_or("the trailer has no /Size")?;
    let root_at = trailer.find("/Root").ok_or("the trailer has no /Root")? + 5;
    let mut root_ref = trailer[root_at..].split_whitespace();
    let (root, gen): (u64, u64) = match (root_ref.next().and_then(|n| n.parse().ok()), root_ref.next().and_then(|n| n.trim_end_matches('R').parse().ok())) {
        (Some(r), Some(g)) => (r, g),
        _ => return Err("the trailer's /Root cannot be read".into()),
    };
    // the catalog where the last table says it is
    let table = std::str::from_utf8(&pdf[prev..tr]).map_err(|_| "the table is not text")?;
    let at = catalog_offset(table, root).ok_or("the catalog is not in the last revision's table")?;
    let head = format!("{root} {gen} obj");
    if !pdf.get(at..).is_some_and(|rest| rest.starts_with(head.as_bytes())) {
        return Err("the table does not point at the catalog".into());
    }
    let body_start = at + head.len();
    let body_end = body_start + pdf[body_start..].windows(6).position(|w| w == b"endobj").ok_or("the catalog has no endobj")?;
    let body = pdf[body_start..body_end].trim_ascii();
    if !body.starts_with(b"<<") || body.windows(4).any(|w| w == b"/DSS") {
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
    let ocsp_ids: Vec<u64> = ocsps.iter().map(|c| stream(&mut out, &mut offsets, c)).collect();
    let crl_ids: Vec<u64> = crls.iter().map(|c| stream(&mut out, &mut offsets, c)).collect();
    let refs = |key: &str, ids: &[u64]| if ids.is_empty() { String::new() } else { format!(" /{key} [{}]", ids.iter().map(|i| format!("{i} 0 R")).collect::<Vec<_>>().join(" ")) };
    let dss = next;
    next += 1;
    offsets.push((dss, 0, out.len()));
    out.extend_from_slice(format!("{dss} 0 obj\n<</Type /DSS{}{}{}>>\nendobj\n", refs("Certs", &cert_ids), refs("OCSPs", &ocsp_ids), refs("CRLs", &crl_ids)).as_bytes());
    offsets.push((root, gen, out.len()));
    out.extend_from_slice(format!("{root} {gen} obj\n<</DSS {dss} 0 R ").as_bytes());
    out.extend_from_slice(&body[2..]);
    out.extend_from_slice(b"\nendobj\n");

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
    let mut dict = trailer;
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

/// Where a classic cross-reference table puts object `id` (in use).
fn catalog_offset(table: &str, id: u64) -> Option<usize> {
    let mut lines = table.lines().skip(1).map(str::trim).filter(|l| !l.is_empty());
    while let Some(header) = lines.next() {
        let mut parts = header.split_whitespace();
        let (start, count): (u64, u64) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        for k in 0..count {
            let entry = lines.next()?;
            if start + k == id {
                let mut f = entry.split_whitespace();
                let (offset, _, kind) = (f.next()?, f.next()?, f.next()?);
                return (kind == "n").then(|| offset.parse().ok()).flatten();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small PDF with a classic cross-reference table, as underskrift's
    /// signature update ends (the catalog written plainly in the last table).
    fn classic_pdf() -> Vec<u8> {
        let mut pdf = b"%PDF-1.7\n".to_vec();
        let catalog = pdf.len();
        pdf.extend_from_slice(b"1 0 obj\n<</Type /Catalog/Pages 2 0 R/Lang (ja-JP)>>\nendobj\n");
        let pages = pdf.len();
        pdf.extend_from_slice(b"2 0 obj\n<</Type /Pages/Kids []/Count 0>>\nendobj\n");
        let xref = pdf.len();
        pdf.extend_from_slice(format!("xref\n0 3\n0000000000 65535 f \n{catalog:010} 00000 n \n{pages:010} 00000 n \ntrailer\n<</Size 3/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
        pdf
    }

    #[test]
    fn the_store_is_an_update_that_keeps_every_byte_before_it_and_reads_back() {
        let pdf = classic_pdf();
        let data = ValidationData { certs: vec![b"certificate one".to_vec()], ocsps: vec![b"an ocsp answer".to_vec()], crls: vec![b"a list".to_vec(), b"another".to_vec()] };
        let out = append_dss(&pdf, &data).expect("appended");
        assert!(out.starts_with(&pdf), "what came before is kept byte for byte");
        let doc = lopdf::Document::load_mem(&out).expect("a PDF lopdf reads");
        let catalog = doc.catalog().expect("catalog");
        assert_eq!(catalog.get(b"Lang").and_then(|l| l.as_str()).ok(), Some(&b"ja-JP"[..]), "the catalog's entries are kept");
        let dss = doc.get_dictionary(catalog.get(b"DSS").and_then(|d| d.as_reference()).expect("/DSS")).expect("the store");
        let streams = |key: &[u8]| -> Vec<Vec<u8>> {
            dss.get(key)
                .and_then(|a| a.as_array())
                .map(|a| a.iter().map(|r| doc.get_object(r.as_reference().unwrap()).unwrap().as_stream().unwrap().content.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(streams(b"Certs"), data.certs);
        assert_eq!(streams(b"OCSPs"), data.ocsps);
        assert_eq!(streams(b"CRLs"), data.crls);
        // the new trailer points back to the previous table
        let previous = String::from_utf8_lossy(&pdf).rsplit("startxref\n").next().unwrap().lines().next().unwrap().to_string();
        let text = String::from_utf8_lossy(&out[pdf.len()..]).to_string();
        let trailer = text.rsplit("trailer\n").next().unwrap();
        assert!(trailer.contains(&format!("/Prev {previous}")) && trailer.contains("/Size 8"), "objects 3 to 7 are new: {trailer}");
    }

    #[test]
    fn a_file_whose_last_revision_is_not_a_classic_table_is_left_as_it_is() {
        let mut pdf = classic_pdf();
        // a last revision pointing at something else than "xref" (a cross-reference stream)
        let at = String::from_utf8_lossy(&pdf).rfind("startxref\n").unwrap() + 10;
        pdf.truncate(at);
        pdf.extend_from_slice(b"9\n%%EOF\n");
        let data = ValidationData { certs: vec![b"c".to_vec()], ..Default::default() };
        assert!(append_dss(&pdf, &data).is_err());
        assert!(append_dss(b"not a pdf at all", &data).is_err());
    }
}
