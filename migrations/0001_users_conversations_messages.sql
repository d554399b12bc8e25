-- Threadline's core tables: who the users are, their conversations, and the messages in them.
--
-- Conventions for every migration:
--   * ids are TEXT chosen by the worker (random, or time-ordered where lists page by them);
--   * times are INTEGER milliseconds since the Unix epoch (UTC);
--   * JSON documents are TEXT holding a JSON object;
--   * D1 enforces foreign keys, so deleting a user removes everything of theirs by cascade;
--   * an applied migration is never edited: changes go into a new numbered file.

create table users (
    id                text primary key,
    -- Compared without regard to case, so "A@x.io" and "a@x.io" are one account.
    email             text not null collate nocase unique,
    -- A PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash
    password_hash     text not null,
    full_name         text,
    preferences       text not null default '{}',
    email_verified_at integer,
    created_at        integer not null,
    updated_at        integer not null
);

create table conversations (
    id              text primary key,
    user_id         text not null references users(id) on delete cascade,
    title           text not null,
    model           text,
    mode            text,
    system_prompt   text,
    settings        text not null default '{}',
    pinned          integer not null default 0 check (pinned in (0, 1)),
    archived        integer not null default 0 check (archived in (0, 1)),
    created_at      integer not null,
    updated_at      integer not null,
    -- Newest activity first is the list order; null until the first message.
    last_message_at integer,
    message_count   integer not null default 0
);

-- The conversation list: one user's conversations by latest activity, with a stable tiebreak.
create index conversations_by_user_activity
    on conversations (user_id, coalesce(last_message_at, created_at) desc, id desc);

create table messages (
    id                text primary key,
    conversation_id   text not null references conversations(id) on delete cascade,
    role              text not null check (role in ('system', 'user', 'assistant')),
    content           text not null,
    model             text,
    -- complete: the reply finished; partial: the client left mid-stream; error: the provider failed mid-stream.
    status            text not null default 'complete' check (status in ('complete', 'partial', 'error')),
    prompt_tokens     integer,
    completion_tokens integer,
    latency_ms        integer,
    created_at        integer not null
);

-- History: a conversation's messages in order, paged by (created_at, id).
create index messages_by_conversation_time on messages (conversation_id, created_at, id);
