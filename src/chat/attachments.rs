//! A chat message's attached files, read for the model: used by the send routes and by the
//! conversation's Durable Object, which runs streamed sends.

use super::input::ChatInput;
use crate::conversations::parts::{no_such_file, MessagePart};
use crate::http::ctx::Ctx;
use crate::http::error::ApiResult;

/// The message's attached files: each must be one of the user's (422 `file_not_found`,
/// missing and another user's alike); its name and type go into the stored part, and its
/// contents to the model — images and PDFs as media, text files as text within the history
/// budget.
pub async fn read_attachments(
    cx: &Ctx,
    user_id: &str,
    mut input: ChatInput,
) -> ApiResult<ChatInput> {
    let field = "content";
    let max_text_chars = (cx.config.chat.context_budget_tokens as usize).saturating_mul(3);
    for i in 0..input.parts.len() {
        let MessagePart::File { file_id, .. } = &input.parts[i] else {
            continue;
        };
        let param = format!("{field}[{i}]");
        let file = crate::files::routes::find(cx, user_id, file_id)
            .await?
            .ok_or_else(|| no_such_file(&param))?;
        input.model_parts[i] = crate::files::routes::attachment(cx, &file, max_text_chars).await?;
        input.parts[i] = MessagePart::File {
            file_id: file.id,
            name: Some(file.name),
            media_type: Some(file.media_type),
        };
    }
    Ok(input)
}
