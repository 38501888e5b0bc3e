//! The backend's Ed25519 key for stations' offline bundles. Made on first
//! start, kept sealed under the data key; the public half goes to each
//! station at enrolment (and to stations enrolled before, once, on asking).

use crate::sealed::SealKey;
use crate::store;
use ed25519_dalek::{Signer, SigningKey};
use crate::store::Pool;

pub struct BundleSigner {
    key: SigningKey,
}

const AAD: &str = "bundle-signing-key";

impl BundleSigner {
    pub async fn load_or_create(pool: &Pool, seal: &SealKey) -> anyhow::Result<BundleSigner> {
        let mut tx = store::begin_write(pool).await?;
        let key = match store::signing_key_sealed(&mut tx).await? {
            Some(sealed) => {
                let hex_key = seal.open_str(&sealed, AAD).map_err(|e| anyhow::anyhow!("the bundle signing key does not open with this data key: {e}"))?;
                let bytes: [u8; 32] = hex::decode(hex_key.trim())?.try_into().map_err(|_| anyhow::anyhow!("the bundle signing key is not 32 bytes"))?;
                SigningKey::from_bytes(&bytes)
            }
            None => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                let sealed = seal.seal_str(&hex::encode(key.to_bytes()), AAD).map_err(|e| anyhow::anyhow!("{e}"))?;
                store::insert_signing_key(&mut tx, &sealed, crate::time::now()).await?;
                tracing::info!("made the bundle signing key");
                key
            }
        };
        tx.commit().await?;
        Ok(BundleSigner { key })
    }

    /// hex of the 32-byte public key.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// hex of the 64-byte signature of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        hex::encode(self.key.sign(body).to_bytes())
    }
}
