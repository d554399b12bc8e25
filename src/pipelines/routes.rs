//! Pipeline routes.
use crate::http::router::Route;

pub fn routes() -> Vec<Route> {
    Vec::new()
}
