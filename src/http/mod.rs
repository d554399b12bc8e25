//! The HTTP layer every resource shares, knowing none of them: the route table's primitives
//! and matching ([`router`]), what a handler gets ([`ctx`]), building responses
//! ([`response`]) and the one error type with its JSON envelope ([`error`]); [`coalesce`]
//! joins the writes of a streamed body that are ready together.

pub mod coalesce;
pub mod ctx;
pub mod error;
pub mod response;
pub mod router;
