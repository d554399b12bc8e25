//! Page cursors: opaque to clients, meaningful only to us.
//!
//! A cursor is a position, not an offset: the key of the last item a page held. The next page
//! starts strictly after it, so items added or removed elsewhere never shift a page, and an
//! item is never returned twice or skipped because of them. The text form is versioned
//! (`c1…`, `m1…`) and base64url-encoded so clients treat it as a token; anything that does not
//! decode to a cursor of the expected kind is a 422 naming `cursor`.

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::http::error::{ApiError, ApiResult};
use crate::platform::ids::is_valid_id;

/// Where the conversation list continues: after this (activity time, id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationCursor {
    pub activity_at: u64,
    pub id: String,
}

/// Which way history is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }

    fn letter(self) -> char {
        match self {
            Order::Asc => 'a',
            Order::Desc => 'd',
        }
    }
}

/// Where a conversation's history continues: after the message at `seq`, in `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCursor {
    pub order: Order,
    pub seq: u64,
}

fn invalid() -> ApiError {
    ApiError::validation(
        "cursor",
        "`cursor` is not a cursor from this list; pass back `next_cursor` unchanged.",
    )
}

fn decode_text(cursor: &str) -> ApiResult<String> {
    if cursor.len() > 256 {
        return Err(invalid());
    }
    let bytes = Base64UrlUnpadded::decode_vec(cursor).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

fn encode_text(text: &str) -> String {
    Base64UrlUnpadded::encode_string(text.as_bytes())
}

/// Numbers in cursors are plain decimal: no sign, no leading zeros, within JavaScript's exact
/// integer range (D1 hands numbers to the worker as doubles).
fn parse_number(s: &str) -> Option<u64> {
    let valid =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    valid
        .then(|| s.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n <= MAX_EXACT_INTEGER)
}

/// 2^53: beyond it a JavaScript number no longer holds every integer.
pub const MAX_EXACT_INTEGER: u64 = 1 << 53;

impl ConversationCursor {
    pub fn encode(&self) -> String {
        encode_text(&format!("c1.{}.{}", self.activity_at, self.id))
    }

    pub fn decode(cursor: &str) -> ApiResult<ConversationCursor> {
        let text = decode_text(cursor)?;
        let mut parts = text.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("c1"), Some(at), Some(id)) if is_valid_id(id) => Ok(ConversationCursor {
                activity_at: parse_number(at).ok_or_else(invalid)?,
                id: id.to_string(),
            }),
            _ => Err(invalid()),
        }
    }
}

impl MessageCursor {
    pub fn encode(&self) -> String {
        encode_text(&format!("m1.{}.{}", self.order.letter(), self.seq))
    }

    pub fn decode(cursor: &str) -> ApiResult<MessageCursor> {
        let text = decode_text(cursor)?;
        let mut parts = text.splitn(3, '.');
        let order = match (parts.next(), parts.next()) {
            (Some("m1"), Some("a")) => Order::Asc,
            (Some("m1"), Some("d")) => Order::Desc,
            _ => return Err(invalid()),
        };
        let seq = parts.next().and_then(parse_number).ok_or_else(invalid)?;
        Ok(MessageCursor { order, seq })
    }

    /// Where a first page starts: before everything in `order`.
    pub fn start(order: Order) -> MessageCursor {
        MessageCursor {
            order,
            seq: match order {
                Order::Asc => 0,
                Order::Desc => MAX_EXACT_INTEGER,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn conversation_cursors_round_trip_and_look_opaque() {
        let c = ConversationCursor {
            activity_at: 1_700_000_000_123,
            id: ID.into(),
        };
        let text = c.encode();
        assert!(!text.contains(ID), "not a readable key: {text}");
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(ConversationCursor::decode(&text).expect("decodes"), c);
    }

    #[test]
    fn message_cursors_round_trip_with_their_order() {
        for order in [Order::Asc, Order::Desc] {
            let c = MessageCursor { order, seq: 42 };
            assert_eq!(MessageCursor::decode(&c.encode()).expect("decodes"), c);
        }
    }

    #[test]
    fn a_cursor_of_the_other_kind_is_refused() {
        let m = MessageCursor {
            order: Order::Asc,
            seq: 1,
        }
        .encode();
        assert!(ConversationCursor::decode(&m).is_err());
        let c = ConversationCursor {
            activity_at: 1,
            id: ID.into(),
        }
        .encode();
        assert!(MessageCursor::decode(&c).is_err());
    }

    #[test]
    fn tampered_or_junk_cursors_are_a_422_naming_cursor() {
        let junk = [
            "",
            "!!!",
            "not base64 at all",
            &encode_text("m1.a.-1"),
            &encode_text("m1.a.01"),
            &encode_text("m1.x.1"),
            &encode_text("m1.a.99999999999999999999"),
            &encode_text("c1.5.not-an-id"),
            &encode_text("c1..0123456789abcdef0123456789abcdef"),
            &encode_text("c2.5.0123456789abcdef0123456789abcdef"),
            &"A".repeat(300),
        ];
        for cursor in junk {
            let err = MessageCursor::decode(cursor)
                .err()
                .or_else(|| ConversationCursor::decode(cursor).err())
                .unwrap_or_else(|| panic!("accepted {cursor:?}"));
            assert_eq!((err.status, err.field.as_deref()), (422, Some("cursor")));
            assert!(ConversationCursor::decode(cursor).is_err(), "{cursor}");
            assert!(MessageCursor::decode(cursor).is_err(), "{cursor}");
        }
    }

    #[test]
    fn first_pages_start_before_every_message() {
        assert_eq!(MessageCursor::start(Order::Asc).seq, 0);
        assert_eq!(MessageCursor::start(Order::Desc).seq, MAX_EXACT_INTEGER);
    }
}
