-- Conversations: the order of a conversation's messages, activity bookkeeping, full-text
-- search over titles and message text, and where a conversation's title came from.
--
-- The invariants below are kept by triggers rather than by the worker, so they hold for every
-- writer (the API, an operator's `wrangler d1 execute`, a test seeding rows): a message always
-- gets the next sequence number of its conversation, the conversation's counters follow its
-- messages, and the search index follows titles and messages, including deletions.

-- Where the title came from: 'default' (the placeholder given at creation, replaced by one
-- made from the first message), 'user' (set by the client; never replaced) or 'generated'.
alter table conversations add column title_source text not null default 'user'
    check (title_source in ('default', 'user', 'generated'));

-- The position of a message in its conversation: 1, 2, 3, … in commit order. History pages by
-- `seq` rather than by `created_at`: D1 runs one statement at a time, so `max(seq) + 1` is
-- always greater than every message already stored. A message inserted while a client is
-- paging therefore always lands after the client's cursor, whatever the clocks of the
-- machines that wrote earlier messages said, and every message appears exactly once.
alter table messages add column seq integer;

update messages set seq = (
    select count(*) from messages earlier
    where earlier.conversation_id = messages.conversation_id
      and (earlier.created_at < messages.created_at
           or (earlier.created_at = messages.created_at and earlier.id <= messages.id))
);

create unique index messages_by_conversation_seq on messages (conversation_id, seq);

-- Superseded by messages_by_conversation_seq for history and for the cascade from
-- conversations; dropping it saves a write per message.
drop index messages_by_conversation_time;

-- Full-text search. `search_documents` gives every searchable text (a conversation's title,
-- or one message) an explicit integer key; that key is the rowid of its row in `search_text`.
-- An explicit INTEGER PRIMARY KEY is never renumbered (VACUUM may renumber implicit rowids,
-- which would silently point the index at the wrong texts).
create table search_documents (
    id              integer primary key,
    conversation_id text not null references conversations(id) on delete cascade,
    -- null for the conversation's title document
    message_id      text
);
create index search_documents_by_conversation on search_documents (conversation_id, message_id);

-- The index itself. Contentless: the texts already live in `conversations` and `messages`, so
-- storing a second copy would double the size of the database. `contentless_delete` lets rows
-- be deleted by rowid. `remove_diacritics 2` makes "resume" find "résumé".
create virtual table search_text using fts5(
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

create trigger conversations_index_title after insert on conversations
begin
    insert into search_documents (conversation_id) values (new.id);
    insert into search_text (rowid, text) values (last_insert_rowid(), new.title);
end;

create trigger conversations_reindex_title after update of title on conversations
when old.title is not new.title
begin
    delete from search_text where rowid = (
        select id from search_documents where conversation_id = new.id and message_id is null
    );
    insert into search_text (rowid, text)
        select id, new.title from search_documents
        where conversation_id = new.id and message_id is null;
end;

-- Deleting a conversation cascades to its search documents (and messages); their text leaves
-- the index here. SQLite fires this for rows removed by the cascade too.
create trigger search_documents_unindex after delete on search_documents
begin
    delete from search_text where rowid = old.id;
end;

create trigger messages_after_insert after insert on messages
begin
    update messages
        set seq = (select coalesce(max(seq), 0) + 1 from messages where conversation_id = new.conversation_id)
        where id = new.id and new.seq is null;
    update conversations
        set message_count = message_count + 1,
            last_message_at = max(coalesce(last_message_at, 0), new.created_at)
        where id = new.conversation_id;
    insert into search_documents (conversation_id, message_id) values (new.conversation_id, new.id);
    insert into search_text (rowid, text) values (last_insert_rowid(), new.content);
end;

-- Index whatever existed before this migration.
insert into search_documents (conversation_id) select id from conversations;
insert into search_text (rowid, text)
    select d.id, c.title from search_documents d join conversations c on c.id = d.conversation_id;
insert into search_documents (conversation_id, message_id) select conversation_id, id from messages;
insert into search_text (rowid, text)
    select d.id, m.content from search_documents d join messages m on m.id = d.message_id;
