-- Files and typed message parts.
--
-- `files`: one row per uploaded file; its bytes are the R2 object `files/<user_id>/<id>` (the
-- key is made of ids only, never of the client's file name). A row is written `pending` before
-- its object and becomes `ready` once the object is stored; only `ready` files are listed or
-- served. A file being removed is first marked `deleting`, then loses its object, then its row.
-- So a failure part-way leaves at worst a hidden `pending`/`deleting` row (swept later, with its
-- object if there is one) — never a listed file without bytes, never an object without a row.
create table files (
    id          text primary key,
    user_id     text not null references users(id) on delete cascade,
    -- The client's name, cleaned (no path, no control characters); shown, never used as a key.
    name        text not null,
    -- Sniffed from the bytes, never taken from the client.
    media_type  text not null,
    size        integer not null,
    -- Hex SHA-256 of the bytes (R2 checks the stored object against it).
    sha256      text not null,
    status      text not null default 'pending' check (status in ('pending', 'ready', 'deleting')),
    created_at  integer not null,
    -- The latest `POST /api/files/{id}/analyze` result, a JSON object; null until analysed.
    analysis    text
);

-- A user's files, newest first, and their storage total.
create index files_by_user on files (user_id, created_at desc, id desc);

-- A message's parts as a JSON array (`[{"type":"text","text":…},{"type":"file","file_id":…}]`);
-- null for a message that is one text part, which `content` holds. `content` always holds the
-- message's text, so search, export and older clients read it as before.
alter table messages add column parts text;
