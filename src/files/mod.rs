//! Files and the media (images, documents) that messages carry.
//!
//! - [`settings`] holds `MAX_FILE_SIZE`.
//! - [`media`] (pure): what bytes are (sniffed, never taken from the client), `data:` URLs, and
//!   inline media checked into the providers' [`crate::providers::wire::Media`].

pub mod media;
pub mod settings;
