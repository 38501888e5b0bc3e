//! The station's secrets, apart from its journal: the credential (its token),
//! the key of the offline cache and the backend's bundle-signing public key,
//! in `secrets_dir` (0700, files 0600; systemd gives the unit its own
//! directory). `backup` copies the journal only: a stolen backup or journal
//! holds no credential, no key and no print number.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Secrets {
    dir: PathBuf,
}

impl Secrets {
    /// Opens (making it, 0700) the secrets directory.
    pub fn open(dir: &Path) -> std::io::Result<Secrets> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Secrets { dir: dir.to_path_buf() })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.path(name)) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `name` whole (0600) or not at all: a temporary file, synced, renamed.
    fn write(&self, name: &str, value: &str) -> std::io::Result<()> {
        let tmp = self.path(&format!(".{name}.new"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn token(&self) -> std::io::Result<Option<String>> {
        self.read("token")
    }

    pub fn save_token(&self, token: &str) -> std::io::Result<()> {
        self.write("token", token)
    }

    /// The backend's bundle-signing key (hex), pinned at enrolment.
    pub fn bundle_key(&self) -> std::io::Result<Option<String>> {
        self.read("bundle.pub")
    }

    pub fn save_bundle_key(&self, hex_key: &str) -> std::io::Result<()> {
        self.write("bundle.pub", hex_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_private_files_in_a_private_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let s = Secrets::open(&dir.path().join("secrets")).expect("open");
        assert_eq!(s.token().expect("read"), None);
        s.save_token("tok-1").expect("save");
        s.save_token("tok-2").expect("save again");
        assert_eq!(s.token().expect("read").as_deref(), Some("tok-2"));
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("secrets")), 0o700);
        assert_eq!(mode(&s.path("token")), 0o600);
    }
}
