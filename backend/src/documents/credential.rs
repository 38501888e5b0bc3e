//! The machine-readable twin of a digital certificate (issue 16): the same
//! certificate as a W3C Verifiable Credential 2.0 in the Open Badges 3.0
//! vocabulary (an `OpenBadgeCredential` whose achievement is the
//! certificate), secured as VC-JOSE: a compact JWS (`typ` `vc+jwt`, `cty`
//! `vc`) signed EdDSA with the university's Ed25519 key, the one whose
//! public half the verification page publishes (`/verify/keys.json`, same
//! `kid`). Its status is the certificate's: `credentialStatus` points at
//! the verification service, which says whether it was revoked.
//!
//! It is attached inside the signed PDF (an embedded file, associated with
//! the document) before the PDF is signed, so the PDF signature covers it
//! too, and it can be downloaded on its own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use serde_json::json;

/// What the credential states: the registrar's records, as the certificate.
#[derive(Debug, Clone)]
pub struct Facts {
    pub university_id: i64,
    pub university_ja: String,
    pub university_en: String,
    pub holder_kanji: String,
    pub holder_roman: String,
    pub title_ja: String,
    pub title_en: String,
    pub serial: String,
    pub code: String,
    /// When it was issued, RFC 3339 in the university's time (`validFrom`).
    pub issued_at: String,
    /// "organisation　name" of a recipient's copy; None: the graduate's own.
    pub submitted_to: Option<String>,
}

/// The media type of a VC secured with JOSE.
pub const MEDIA_TYPE: &str = "application/vc+jwt";

/// The issuer's profile URL (served as JSON with its key).
pub fn issuer_id(public_url: &str, university_id: i64) -> String {
    format!("{public_url}/verify/issuers/{university_id}")
}

/// The credential (unsecured JSON) for one certificate.
pub fn credential(public_url: &str, f: &Facts) -> serde_json::Value {
    let mut subject = json!({
        "type": ["AchievementSubject"],
        "name": f.holder_roman,
        "achievement": {
            "id": format!("{public_url}/verify?code={}", f.code),
            "type": ["Achievement"],
            "name": f.title_en,
            "description": format!("{} ({}), issued by {} ({}) from the registrar's records.", f.title_en, f.title_ja, f.university_en, f.university_ja),
            "criteria": { "narrative": format!("The registrar's records of {}.", f.university_en) }
        }
    });
    subject["identifier"] = json!([{ "type": "IdentityObject", "identityHash": f.holder_kanji, "identityType": "name", "hashed": false }]);
    let mut vc = json!({
        "@context": ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
        "id": format!("urn:shomei:certificate:{}", f.serial),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": { "id": issuer_id(public_url, f.university_id), "type": ["Profile"], "name": f.university_en },
        "validFrom": f.issued_at,
        "name": f.title_en,
        "credentialSubject": subject,
        "credentialStatus": {
            "id": format!("{public_url}/verify/status?code={}", f.code),
            "type": "ShomeiCertificateStatus"
        }
    });
    if let Some(to) = &f.submitted_to {
        vc["termsOfUse"] = json!([{ "type": "IssuedForSubmission", "submittedTo": to }]);
    }
    vc
}

/// The credential secured as a compact JWS (VC-JOSE) with the university's key.
pub fn secure(signer: &super::proof::ProofSigner, vc: &serde_json::Value) -> String {
    let header = json!({ "alg": "EdDSA", "kid": signer.kid(), "typ": "vc+jwt", "cty": "vc" });
    let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
    let p = B64.encode(serde_json::to_vec(vc).unwrap_or_default());
    let input = format!("{h}.{p}");
    format!("{input}.{}", B64.encode(signer.sign_bytes(input.as_bytes())))
}

/// `pdf` with `files` (name, compact JWS) attached as embedded files
/// associated with the document (PDF 2.0 /AF, relationship Alternative: the
/// same content in another form), before it is signed.
pub fn attach(pdf: &[u8], files: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut doc = Document::load_mem(pdf).map_err(|e| format!("reading the PDF: {e}"))?;
    let mut names = Vec::new();
    let mut specs = Vec::new();
    for (serial, jwt) in files {
        let name = format!("{serial}.vc.jwt");
        let mut file = Stream::new(dictionary! { "Type" => "EmbeddedFile", "Subtype" => Object::Name(b"application/vc+jwt".to_vec()) }, jwt.as_bytes().to_vec());
        file.dict.set("Params", dictionary! { "Size" => jwt.len() as i64 });
        let file_id = doc.add_object(file);
        let spec = dictionary! {
            "Type" => "Filespec",
            "F" => Object::String(name.as_bytes().to_vec(), StringFormat::Literal),
            "UF" => Object::String(name.as_bytes().to_vec(), StringFormat::Literal),
            "Desc" => Object::String(b"W3C Verifiable Credential 2.0 (Open Badges 3.0), secured as vc+jwt".to_vec(), StringFormat::Literal),
            "AFRelationship" => "Alternative",
            "EF" => dictionary! { "F" => file_id, "UF" => file_id },
        };
        let spec_id = doc.add_object(spec);
        names.push(Object::String(name.into_bytes(), StringFormat::Literal));
        names.push(spec_id.into());
        specs.push(Object::from(spec_id));
    }
    let catalog = doc.catalog_mut().map_err(|e| format!("the PDF's catalog: {e}"))?;
    catalog.set("Names", dictionary! { "EmbeddedFiles" => dictionary! { "Names" => names } });
    catalog.set("AF", specs);
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| format!("writing the PDF: {e}"))?;
    Ok(out)
}
