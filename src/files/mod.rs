//! Files: uploads kept in R2 with their metadata in D1, and the media (images, documents) that
//! messages carry.
//!
//! - [`settings`] holds `MAX_FILE_SIZE`, `MAX_FILES_PER_UPLOAD`, `FILE_STORAGE_QUOTA_BYTES` and
//!   `ALLOWED_FILE_TYPES`.
//! - [`media`] (pure): what bytes are (sniffed, never taken from the client), `data:` URLs, and
//!   inline media checked into the providers' [`crate::providers::wire::Media`].
//! - [`model`] (pure): the file as the API shows it, clean names, keys, download headers.
//! - [`service`]: storing and removing a file so D1 and R2 never disagree, over two seams.
//! - [`analysis`] (pure): what `POST /api/files/{id}/analyze` asks a model.
//! - [`store`]: the D1 rows and the R2 objects behind those seams. [`routes`]: the handlers.

pub mod analysis;
pub mod media;
pub mod model;
pub mod routes;
pub mod service;
pub mod settings;
pub mod store;
