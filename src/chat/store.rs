//! The D1 statements of chat: the user's message (with a new conversation, or with the title
//! its first message gives), the replies, and titles made by a model.
//!
//! Message order, the conversation's counters and the search index follow from the triggers
//! of `migrations/0003_conversations.sql`; nothing here maintains them. Every write names the
//! owner, so a conversation deleted or never owned is simply not written to.

use futures::future::LocalBoxFuture;
use worker::D1Database;

use super::reply::{AssistantReply, ReplySink};
use crate::context::Ctx;
use crate::conversations::input::NewConversation;
use crate::conversations::model::{Conversation, ConversationRow, Message, MessageStatus};
use crate::conversations::store::{INSERT_CONVERSATION, SELECT_CONVERSATION};
use crate::db::{self, Val};
use crate::error::{ApiError, ApiResult};
use crate::providers::Role;

// The owner check is inside the statement: a message is only ever added to a conversation of
// the user (`?11`) that still exists.
const INSERT_MESSAGE: &str = "insert into messages
    (id, conversation_id, role, content, model, status, prompt_tokens, completion_tokens,
     latency_ms, created_at)
    select ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
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

/// A message about to be stored for the user.
#[derive(Debug, Clone)]
pub struct UserMessage {
    pub id: String,
    pub content: String,
    pub created_at: u64,
}

impl UserMessage {
    fn message(&self, conversation_id: &str) -> Message {
        Message {
            id: self.id.clone(),
            conversation_id: conversation_id.to_string(),
            role: Role::User,
            content: self.content.clone(),
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

pub struct ChatStore {
    db: D1Database,
    user_id: String,
}

fn insert_message<'a>(
    db: &D1Database,
    user_id: &'a str,
    reply: &'a AssistantReply,
    role: Role,
) -> ApiResult<worker::D1PreparedStatement> {
    db::stmt(
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
        ],
    )
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

impl ChatStore {
    pub fn new(cx: &Ctx, user_id: &str) -> ApiResult<ChatStore> {
        Ok(ChatStore {
            db: db::database(cx)?,
            user_id: user_id.to_string(),
        })
    }

    /// Stores the user's message (creating the conversation, or titling it, as `to` says) in
    /// one transaction, and reads the conversation back; `None` when it is not the user's.
    pub async fn add_user_message(
        &self,
        to: Destination<'_>,
        message: &UserMessage,
    ) -> ApiResult<Option<(Conversation, Message)>> {
        let user = Val::from(&self.user_id);
        let mut statements = Vec::with_capacity(3);
        let conversation_id = match to {
            Destination::New { id, new } => {
                let settings = serde_json::Value::Object(new.settings.clone()).to_string();
                statements.push(db::stmt(
                    &self.db,
                    INSERT_CONVERSATION,
                    &[
                        Val::from(id),
                        Val::from(&self.user_id),
                        Val::from(&new.title),
                        Val::from(new.title_source.as_str()),
                        Val::from(new.model.as_deref()),
                        Val::from(new.mode.as_deref()),
                        Val::from(new.system_prompt.as_deref()),
                        Val::from(&settings),
                        Val::from(message.created_at),
                    ],
                )?);
                id
            }
            Destination::Existing { id, title } => {
                statements.push(db::stmt(
                    &self.db,
                    TITLE_FROM_MESSAGE,
                    &[Val::from(id), Val::from(&self.user_id), Val::from(title)],
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
        };
        statements.push(insert_message(
            &self.db,
            &self.user_id,
            &stored,
            Role::User,
        )?);
        statements.push(db::stmt(
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
            .map_err(|e| db::d1_error(SELECT_CONVERSATION, e))?
            .into_iter()
            .next();
        Ok(row.map(|row| (Conversation::from(row), message.message(conversation_id))))
    }

    /// The user's conversation `id`, if it is theirs.
    pub async fn conversation(&self, id: &str) -> ApiResult<Option<Conversation>> {
        let row: Option<ConversationRow> = db::first(
            &self.db,
            SELECT_CONVERSATION,
            &[Val::from(id), Val::from(&self.user_id)],
        )
        .await?;
        Ok(row.map(Conversation::from))
    }

    /// Replaces the title made from the first message (`from`) with a model's (`to`).
    pub async fn replace_generated_title(&self, id: &str, from: &str, to: &str) -> ApiResult<bool> {
        let changed = db::execute(
            &self.db,
            REPLACE_GENERATED_TITLE,
            &[
                Val::from(id),
                Val::from(&self.user_id),
                Val::from(to),
                Val::from(from),
            ],
        )
        .await?;
        Ok(changed > 0)
    }
}

impl ReplySink for ChatStore {
    fn store(&self, reply: AssistantReply) -> LocalBoxFuture<'_, ApiResult<Message>> {
        Box::pin(async move {
            let statement = insert_message(&self.db, &self.user_id, &reply, Role::Assistant)?;
            let result = statement
                .run()
                .await
                .map_err(|e| db::d1_error(INSERT_MESSAGE, e))?;
            let changed = result.meta().ok().flatten().and_then(|m| m.changes);
            if changed == Some(0) {
                // The conversation was deleted while the reply streamed.
                return Err(ApiError::not_found());
            }
            Ok(reply.into_message())
        })
    }
}
