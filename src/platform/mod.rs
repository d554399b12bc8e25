//! What differs between the Workers runtime and a native test, behind small seams, and the
//! plumbing every resource uses: the clock ([`clock`]), randomness ([`random`]), ids
//! ([`ids`]), D1 helpers ([`d1`]), structured logs ([`logging`]) and timers ([`timer`]).
//! Knows no resource.

pub mod clock;
pub mod d1;
pub mod ids;
pub mod logging;
pub mod random;
pub mod timer;
