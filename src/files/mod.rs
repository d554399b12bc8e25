//! Files: uploads kept in R2 with their metadata in D1, and the media (images, documents)
//! that messages carry.
//!
//! - [`settings`]: the limits (`MAX_FILE_SIZE`, `MAX_FILES_PER_UPLOAD`, `FILE_STORAGE_QUOTA_BYTES`,
//!   `ALLOWED_FILE_TYPES`).
//! - [`media`] (pure): what bytes are (sniffed, never taken from the client), `data:` URLs, and
//!   inline media checked into the providers' [`crate::providers::wire::Media`].

pub mod media;
pub mod settings;
