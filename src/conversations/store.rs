//! Conversations and messages in D1.
//!
//! Every statement that reads or changes a conversation names the owner (`user_id = ?`), so
//! another user's conversation is indistinguishable from a missing one. Reads of messages
//! carry the ownership check inside the same statement, and the two reads a page needs go in
//! one `batch` (one round trip, one consistent snapshot).
//!
//! Message order, conversation counters and the search index are kept by the triggers of
//! `migrations/0003_conversations.sql`, so the statements here never maintain them by hand.

use worker::{D1Database, D1PreparedStatement};

use super::cursor::{ConversationCursor, MessageCursor, Order, MAX_EXACT_INTEGER};
use super::input::{ConversationPatch, HistoryQuery, ListQuery, NewConversation};
use super::model::{
    AssistantReply, Conversation, ConversationRow, Message, MessageRow, MessageStatus,
};
use super::parts::MessagePart;
use super::stats::{ConversationCounts, MessageGroup, Stats};
use crate::http::ctx::Ctx;
use crate::http::error::{ApiError, ApiResult};
use crate::platform::d1::{self, Val};
use crate::providers::wire::Role;

macro_rules! conversation_columns {
    () => {
        "id, title, title_source, model, mode, system_prompt, settings, pinned, archived, \
         created_at, updated_at, last_message_at, message_count"
    };
}

macro_rules! message_columns {
    () => {
        "id, conversation_id, role, content, model, status, prompt_tokens, completion_tokens, \
         latency_ms, created_at, seq, parts"
    };
}

/// One conversation by id and owner (`?1`, `?2`); also read back after storing a message.
const SELECT_CONVERSATION: &str = concat!(
    "select ",
    conversation_columns!(),
    " from conversations where id = ?1 and user_id = ?2"
);

/// Creates a conversation; a send creates one with its first message in the same batch.
const INSERT_CONVERSATION: &str = "insert into conversations \
    (id, user_id, title, title_source, model, mode, system_prompt, settings, created_at, updated_at) \
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)";

// The list is read by the index `conversations_by_user_activity`; the row-value comparison
// continues strictly after the cursor (the first page passes a position after everything).
const LIST_CONVERSATIONS: &str = concat!(
    "select ",
    conversation_columns!(),
    " from conversations
    where user_id = ?1
      and (?2 is null or pinned = ?2)
      and (?3 is null or archived = ?3)
      and (coalesce(last_message_at, created_at), id) < (?4, ?5)
    order by coalesce(last_message_at, created_at) desc, id desc
    limit ?6"
);

const SEARCH_CONVERSATIONS: &str = concat!(
    "select ",
    conversation_columns!(),
    " from conversations
    where user_id = ?1
      and (?2 is null or pinned = ?2)
      and (?3 is null or archived = ?3)
      and (coalesce(last_message_at, created_at), id) < (?4, ?5)
      and id in (
          select search_documents.conversation_id
          from search_text join search_documents on search_documents.id = search_text.rowid
          where search_text match ?7
      )
    order by coalesce(last_message_at, created_at) desc, id desc
    limit ?6"
);

// History pages by `seq`; `exists` keeps the owner check inside the statement.
const MESSAGES_AFTER: &str = concat!(
    "select ",
    message_columns!(),
    " from messages
    where conversation_id = ?1
      and exists (select 1 from conversations where id = ?1 and user_id = ?2)
      and seq > ?3
    order by seq asc
    limit ?4"
);

const MESSAGES_BEFORE: &str = concat!(
    "select ",
    message_columns!(),
    " from messages
    where conversation_id = ?1
      and exists (select 1 from conversations where id = ?1 and user_id = ?2)
      and seq < ?3
    order by seq desc
    limit ?4"
);

// `?3`…`?12`: each field's new value, or null to keep it; the nullable fields take a flag
// (`?6`, `?8`, `?10`) so that null can also mean "clear".
const UPDATE_CONVERSATION: &str = concat!(
    "update conversations set
        title = coalesce(?3, title),
        title_source = case when ?3 is null then title_source else 'user' end,
        pinned = coalesce(?4, pinned),
        archived = coalesce(?5, archived),
        model = case when ?6 then ?7 else model end,
        mode = case when ?8 then ?9 else mode end,
        system_prompt = case when ?10 then ?11 else system_prompt end,
        settings = coalesce(?12, settings),
        updated_at = ?13
    where id = ?1 and user_id = ?2
    returning ",
    conversation_columns!()
);

const DELETE_CONVERSATION: &str = "delete from conversations where id = ?1 and user_id = ?2";

const COUNT_CONVERSATIONS: &str = "select count(*) as conversations, \
    coalesce(sum(pinned), 0) as pinned, coalesce(sum(archived), 0) as archived \
    from conversations where user_id = ?1";

const COUNT_MESSAGES: &str = "select m.role as role, m.model as model, count(*) as messages, \
    coalesce(sum(m.prompt_tokens), 0) as prompt_tokens, \
    coalesce(sum(m.completion_tokens), 0) as completion_tokens \
    from messages m join conversations c on c.id = m.conversation_id \
    where c.user_id = ?1 \
    group by m.role, m.model";

/// How many messages an export reads per statement.
// The owner check is inside the statement: a message is only ever added to a conversation of
// the user (`?11`) that still exists.
const INSERT_MESSAGE: &str = "insert into messages
    (id, conversation_id, role, content, model, status, prompt_tokens, completion_tokens,
     latency_ms, created_at, parts)
    select ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12
    where exists (select 1 from conversations where id = ?2 and user_id = ?11)";

// The first message names a conversation whose title is still the placeholder.
const TITLE_FROM_MESSAGE: &str = "update conversations
    set title = ?3, title_source = 'generated'
    where id = ?1 and user_id = ?2 and title_source = 'default'";

// A model's title replaces the one made from the first line — unless the user renamed the
// conversation meanwhile (then `title_source` is 'user').
const REPLACE_GENERATED_TITLE: &str = "update conversations
    set title = ?3
    where id = ?1 and user_id = ?2 and title_source = 'generated' and title = ?4";

const EXPORT_CHUNK: usize = 500;

/// The D1-backed store of conversations and messages.
/// A message about to be stored for the user.
#[derive(Debug, Clone)]
pub struct UserMessage {
    pub id: String,
    /// The text (the text parts joined).
    pub content: String,
    /// The parts, as stored (`[]` for plain text: the message is its `content`).
    pub parts: Vec<MessagePart>,
    pub created_at: u64,
}

impl UserMessage {
    /// The message as it reads once stored in `conversation_id`.
    pub fn message(&self, conversation_id: &str) -> Message {
        Message {
            id: self.id.clone(),
            conversation_id: conversation_id.to_string(),
            role: Role::User,
            content: self.content.clone(),
            parts: if self.parts.is_empty() {
                vec![MessagePart::text(self.content.clone())]
            } else {
                self.parts.clone()
            },
            model: None,
            status: MessageStatus::Complete,
            usage: None,
            latency_ms: None,
            created_at: self.created_at,
            seq: 0,
        }
    }
}

/// Where the user's message goes.
pub enum Destination<'a> {
    /// An existing conversation; `title` replaces its placeholder title, if it still has it.
    Existing { id: &'a str, title: &'a str },
    /// A conversation created with the message (`new.title` already made from it).
    New {
        id: &'a str,
        new: &'a NewConversation,
    },
}

pub struct ConversationStore {
    db: D1Database,
}

fn insert_message<'a>(
    db: &D1Database,
    user_id: &'a str,
    reply: &'a AssistantReply,
    role: Role,
    parts: Option<&'a str>,
) -> ApiResult<worker::D1PreparedStatement> {
    d1::stmt(
        db,
        INSERT_MESSAGE,
        &[
            Val::from(&reply.id),
            Val::from(&reply.conversation_id),
            Val::from(role_name(role)),
            Val::from(&reply.content),
            Val::from(reply.model.as_deref()),
            Val::from(reply.status.as_str()),
            Val::from(reply.usage.map(|u| u64::from(u.prompt_tokens))),
            Val::from(reply.usage.map(|u| u64::from(u.completion_tokens))),
            Val::from(reply.latency_ms),
            Val::from(reply.created_at),
            Val::from(user_id),
            Val::from(parts),
        ],
    )
}

/// The `parts` column: `NULL` for a message that is its text alone.
fn parts_json(parts: &[MessagePart]) -> ApiResult<Option<String>> {
    if parts.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(parts)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("parts json: {e}")))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The statement that creates conversation `id` for `user_id`, as `new` describes it.
fn insert_conversation(
    db: &D1Database,
    user_id: &str,
    id: &str,
    new: &NewConversation,
    now_ms: u64,
) -> ApiResult<D1PreparedStatement> {
    let settings = settings_json(&new.settings);
    d1::stmt(
        db,
        INSERT_CONVERSATION,
        &[
            Val::from(id),
            Val::from(user_id),
            Val::from(&new.title),
            Val::from(new.title_source.as_str()),
            Val::from(new.model.as_deref()),
            Val::from(new.mode.as_deref()),
            Val::from(new.system_prompt.as_deref()),
            Val::from(&settings),
            Val::from(now_ms),
        ],
    )
}

fn settings_json(settings: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(settings.clone()).to_string()
}

/// Two nullable-field arguments: "change it?" and the new value.
fn change<'a>(value: &'a Option<Option<String>>) -> (Val<'a>, Val<'a>) {
    match value {
        None => (Val::from(false), Val::Null),
        Some(v) => (Val::from(true), Val::from(v.as_deref())),
    }
}

impl ConversationStore {
    pub fn new(cx: &Ctx) -> ApiResult<Self> {
        Ok(ConversationStore {
            db: d1::database(cx)?,
        })
    }

    async fn batch(
        &self,
        statements: Vec<D1PreparedStatement>,
    ) -> ApiResult<Vec<worker::D1Result>> {
        self.db
            .batch(statements)
            .await
            .map_err(|e| ApiError::internal(format!("D1 batch: {e}")))
    }

    pub async fn create(
        &self,
        user_id: &str,
        id: &str,
        new: &NewConversation,
        now_ms: u64,
    ) -> ApiResult<Conversation> {
        insert_conversation(&self.db, user_id, id, new, now_ms)?
            .run()
            .await
            .map_err(|e| d1::d1_error(INSERT_CONVERSATION, e))?;
        Ok(new.conversation(id, now_ms))
    }

    /// Stores the user's message (creating the conversation, or titling it, as `to` says) in
    /// one transaction, and reads the conversation back; `None` when it is not the user's.
    pub async fn add_user_message(
        &self,
        user_id: &str,
        to: Destination<'_>,
        message: &UserMessage,
    ) -> ApiResult<Option<(Conversation, Message)>> {
        let user = Val::from(user_id);
        let mut statements = Vec::with_capacity(3);
        let conversation_id = match to {
            Destination::New { id, new } => {
                statements.push(insert_conversation(
                    &self.db,
                    user_id,
                    id,
                    new,
                    message.created_at,
                )?);
                id
            }
            Destination::Existing { id, title } => {
                statements.push(d1::stmt(
                    &self.db,
                    TITLE_FROM_MESSAGE,
                    &[Val::from(id), Val::from(user_id), Val::from(title)],
                )?);
                id
            }
        };
        let stored = AssistantReply {
            id: message.id.clone(),
            conversation_id: conversation_id.to_string(),
            content: message.content.clone(),
            model: None,
            status: MessageStatus::Complete,
            usage: None,
            latency_ms: None,
            created_at: message.created_at,
            parts: Vec::new(),
        };
        let parts = parts_json(&message.parts)?;
        statements.push(insert_message(
            &self.db,
            user_id,
            &stored,
            Role::User,
            parts.as_deref(),
        )?);
        statements.push(d1::stmt(
            &self.db,
            SELECT_CONVERSATION,
            &[Val::from(conversation_id), user],
        )?);
        let results = self
            .db
            .batch(statements)
            .await
            .map_err(|e| ApiError::internal(format!("D1 batch (user message): {e}")))?;
        let row: Option<ConversationRow> = results
            .last()
            .ok_or_else(|| ApiError::internal("D1 batch: missing result"))?
            .results::<ConversationRow>()
            .map_err(|e| d1::d1_error(SELECT_CONVERSATION, e))?
            .into_iter()
            .next();
        Ok(row.map(|row| (Conversation::from(row), message.message(conversation_id))))
    }

    /// Replaces the title made from the first message (`from`) with a model's (`to`).
    pub async fn replace_generated_title(
        &self,
        user_id: &str,
        id: &str,
        from: &str,
        to: &str,
    ) -> ApiResult<bool> {
        let changed = d1::execute(
            &self.db,
            REPLACE_GENERATED_TITLE,
            &[
                Val::from(id),
                Val::from(user_id),
                Val::from(to),
                Val::from(from),
            ],
        )
        .await?;
        Ok(changed > 0)
    }

    /// Stores a reply in the user's conversation; 404 when the conversation was deleted
    /// meanwhile (it is not written then).
    pub async fn add_reply(&self, user_id: &str, reply: AssistantReply) -> ApiResult<Message> {
        let parts = parts_json(&reply.parts)?;
        let statement =
            insert_message(&self.db, user_id, &reply, Role::Assistant, parts.as_deref())?;
        let result = statement
            .run()
            .await
            .map_err(|e| d1::d1_error(INSERT_MESSAGE, e))?;
        let changed = result.meta().ok().flatten().and_then(|m| m.changes);
        if changed == Some(0) {
            // The conversation was deleted while the reply streamed.
            return Err(ApiError::not_found());
        }
        Ok(reply.into_message())
    }

    /// The user's conversation `id`, if it exists and is theirs.
    pub async fn get(&self, user_id: &str, id: &str) -> ApiResult<Option<Conversation>> {
        let row: Option<ConversationRow> = d1::first(
            &self.db,
            SELECT_CONVERSATION,
            &[Val::from(id), Val::from(user_id)],
        )
        .await?;
        Ok(row.map(Conversation::from))
    }

    /// The conversation and up to `page.limit + 1` of its messages from `page.after`, in the
    /// cursor's order; `None` when the conversation is not the user's.
    pub async fn get_with_messages(
        &self,
        user_id: &str,
        id: &str,
        page: HistoryQuery,
    ) -> ApiResult<Option<(Conversation, Vec<Message>)>> {
        let sql = match page.after.order {
            Order::Asc => MESSAGES_AFTER,
            Order::Desc => MESSAGES_BEFORE,
        };
        let conversation = d1::stmt(
            &self.db,
            SELECT_CONVERSATION,
            &[Val::from(id), Val::from(user_id)],
        )?;
        let messages = d1::stmt(
            &self.db,
            sql,
            &[
                Val::from(id),
                Val::from(user_id),
                Val::from(page.after.seq),
                Val::from(page.limit as u64 + 1),
            ],
        )?;
        let results = self.batch(vec![conversation, messages]).await?;
        let read = |i: usize| {
            results
                .get(i)
                .ok_or_else(|| ApiError::internal("D1 batch: missing result"))
        };
        let conversation: Option<ConversationRow> = read(0)?
            .results::<ConversationRow>()
            .map_err(|e| d1::d1_error(SELECT_CONVERSATION, e))?
            .into_iter()
            .next();
        let Some(conversation) = conversation else {
            return Ok(None);
        };
        let messages: Vec<MessageRow> = read(1)?.results().map_err(|e| d1::d1_error(sql, e))?;
        Ok(Some((
            conversation.into(),
            messages.into_iter().map(Message::from).collect(),
        )))
    }

    /// Every message of the user's conversation, oldest first, read in chunks.
    pub async fn all_messages(
        &self,
        user_id: &str,
        id: &str,
    ) -> ApiResult<Option<(Conversation, Vec<Message>)>> {
        let mut after = MessageCursor::start(Order::Asc);
        let mut all = Vec::new();
        let mut conversation = None;
        loop {
            let page = HistoryQuery {
                after,
                limit: EXPORT_CHUNK,
            };
            let Some((c, mut chunk)) = self.get_with_messages(user_id, id, page).await? else {
                return Ok(None);
            };
            conversation.get_or_insert(c);
            let more = chunk.len() > EXPORT_CHUNK;
            chunk.truncate(EXPORT_CHUNK);
            if let Some(last) = chunk.last() {
                after.seq = last.seq;
            }
            all.extend(chunk);
            if !more {
                break;
            }
        }
        Ok(conversation.map(|c| (c, all)))
    }

    /// Up to `query.limit + 1` of the user's conversations, newest activity first.
    pub async fn list(&self, user_id: &str, query: &ListQuery) -> ApiResult<Vec<Conversation>> {
        let (before_at, before_id) = match &query.cursor {
            Some(ConversationCursor { activity_at, id }) => (*activity_at, id.as_str()),
            None => (MAX_EXACT_INTEGER, ""),
        };
        let mut params = vec![
            Val::from(user_id),
            Val::from(query.pinned),
            Val::from(query.archived),
            Val::from(before_at),
            Val::from(before_id),
            Val::from(query.limit as u64 + 1),
        ];
        let sql = match &query.search {
            None => LIST_CONVERSATIONS,
            Some(search) => match search.fts_query.as_deref() {
                // Nothing searchable (e.g. `q=*`): nothing matches.
                None => return Ok(Vec::new()),
                Some(fts) => {
                    params.push(Val::from(fts));
                    SEARCH_CONVERSATIONS
                }
            },
        };
        let rows: Vec<ConversationRow> = d1::all(&self.db, sql, &params).await?;
        Ok(rows.into_iter().map(Conversation::from).collect())
    }

    /// Applies `patch`; `None` when the conversation is not the user's.
    pub async fn update(
        &self,
        user_id: &str,
        id: &str,
        patch: &ConversationPatch,
        now_ms: u64,
    ) -> ApiResult<Option<Conversation>> {
        let settings = patch.settings.as_ref().map(settings_json);
        let (model_set, model) = change(&patch.model);
        let (mode_set, mode) = change(&patch.mode);
        let (prompt_set, prompt) = change(&patch.system_prompt);
        let row: Option<ConversationRow> = d1::first(
            &self.db,
            UPDATE_CONVERSATION,
            &[
                Val::from(id),
                Val::from(user_id),
                Val::from(patch.title.as_deref()),
                Val::from(patch.pinned),
                Val::from(patch.archived),
                model_set,
                model,
                mode_set,
                mode,
                prompt_set,
                prompt,
                Val::from(settings.as_ref()),
                Val::from(now_ms),
            ],
        )
        .await?;
        Ok(row.map(Conversation::from))
    }

    /// Deletes the conversation with its messages and search entries (by cascade and
    /// trigger); `false` when it is not the user's.
    pub async fn delete(&self, user_id: &str, id: &str) -> ApiResult<bool> {
        let changed = d1::execute(
            &self.db,
            DELETE_CONVERSATION,
            &[Val::from(id), Val::from(user_id)],
        )
        .await?;
        Ok(changed > 0)
    }

    pub async fn stats(&self, user_id: &str) -> ApiResult<Stats> {
        let counts = d1::stmt(&self.db, COUNT_CONVERSATIONS, &[Val::from(user_id)])?;
        let groups = d1::stmt(&self.db, COUNT_MESSAGES, &[Val::from(user_id)])?;
        let results = self.batch(vec![counts, groups]).await?;
        let counts: ConversationCounts = results
            .first()
            .map(|r| r.results::<ConversationCounts>())
            .transpose()
            .map_err(|e| d1::d1_error(COUNT_CONVERSATIONS, e))?
            .and_then(|rows| rows.into_iter().next())
            .unwrap_or_default();
        let groups: Vec<MessageGroup> = results
            .get(1)
            .map(|r| r.results::<MessageGroup>())
            .transpose()
            .map_err(|e| d1::d1_error(COUNT_MESSAGES, e))?
            .unwrap_or_default();
        Ok(Stats::from_rows(counts, groups))
    }
}
