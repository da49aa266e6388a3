//! Reading an object whole on behalf of another service of the node (a function's code
//! package named by `S3Bucket`/`S3Key`), with the same access rules as a `GetObject`.

use std::io::Read;

use crate::error::S3Error;
use crate::store::ObjectStore;

impl ObjectStore {
    /// The body of `bucket`/`key` (a given version, or the current one) as `account` may read
    /// it: its own bucket, or one whose policy grants it `s3:GetObject`. Blocking. Bodies over
    /// `max` bytes are refused with `EntityTooLarge`.
    pub fn read_as(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        max: u64,
    ) -> Result<Vec<u8>, S3Error> {
        let b = self.bucket(bucket)?;
        if b.account != account {
            let arn = format!("arn:aws:s3:::{bucket}/{key}");
            let allowed = b
                .policy
                .as_deref()
                .is_some_and(|p| crate::policy::allows(p, account, "s3:GetObject", &arn));
            if !allowed {
                return Err(S3Error::access_denied());
            }
        }
        let rec = self.object(bucket, key, version)?;
        let rec = match rec {
            Some(r) if !r.delete_marker => r,
            _ if version.is_some() => {
                return Err(S3Error::no_such_version(key, version.unwrap_or_default()));
            }
            _ => return Err(S3Error::no_such_key(key)),
        };
        if rec.size > max {
            return Err(S3Error::new(
                "EntityTooLarge",
                400,
                format!("The object is {} bytes; at most {max} are read.", rec.size),
            ));
        }
        let sha = rec.sha256.ok_or_else(|| S3Error::no_such_key(key))?;
        let mut out = Vec::with_capacity(rec.size as usize);
        std::fs::File::open(self.blobs.path(&sha))?.read_to_end(&mut out)?;
        Ok(out)
    }
}
